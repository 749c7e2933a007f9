//! Why storage failed: the one error every [`super::Db`] backend returns.
//! A leaf (it imports nothing of the fleet), so the fleet's own error type
//! can wrap it without tying the domain to the storage layer.

/// Why storage failed. Bad input never gets here: the fleet validates
/// first, so these are server-side faults (answered 500).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error while {doing}: {source}")]
    Sql {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the target database is not empty ({table} holds {rows} rows): migrate copies into a database no fleet has started on; give a new database (PostgreSQL creates it) or a new SQLite file")]
    NotEmpty { table: &'static str, rows: u64 },
    #[error("--from and --to name the same database")]
    SameDatabase,
    #[error("copying table {table} failed while {doing}: {source}")]
    Copy {
        table: &'static str,
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored {what} cannot be read back ({problem}); the database is damaged or from a newer version")]
    Corrupt { what: &'static str, problem: String },
}

pub type DbResult<T> = Result<T, DbError>;
