//! Tidy: the invariants written in ARCHITECTURE.md, checked.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    assert!(files.len() > 10, "found only {} files", files.len());
    files
}

/// Direct normal (non-dev) dependencies of a workspace crate, by name.
/// (Transitive ones are not the crate's choice: minijinja's `tojson` filter
/// pulls in serde_json, which is not a wire type.)
fn deps_of(krate: &str) -> Vec<String> {
    tree_of(krate, true)
}

/// The packages in `krate`'s normal dependency tree: only its direct
/// dependencies, or the whole tree.
fn tree_of(krate: &str, direct_only: bool) -> Vec<String> {
    let mut args = vec!["tree", "--offline", "-e", "normal", "--prefix", "none"];
    if direct_only {
        args.extend(["--depth", "1"]);
    }
    args.extend(["--format", "{p}", "-p", krate]);
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    for f in all_rust_files() {
        let text = std::fs::read_to_string(&f).expect("read");
        assert!(
            text.starts_with("//!"),
            "{} must start with a //! line saying what it is for",
            f.display()
        );
    }
}

#[test]
fn files_stay_under_800_lines() {
    for f in all_rust_files() {
        let n = std::fs::read_to_string(&f).expect("read").lines().count();
        assert!(
            n <= 800,
            "{} has {n} lines: split it by concept",
            f.display()
        );
    }
}

#[test]
fn engine_knows_no_http_json_store_or_fleet() {
    let deps = deps_of("outpost-engine");
    assert_links_none(
        "outpost-engine",
        &deps,
        &[
            "axum",
            "hyper",
            "reqwest",
            "ureq",
            "serde_json",
            "sqlx",
            "tokio",
            "outpost-store",
            "outpost-fleet",
        ],
    );
    assert_tree_parsed(&deps, "llama-cpp-2");
}

#[test]
fn llama_cpp_is_pinned_and_named_consistently() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let pinned = |name: &str| {
        manifest
            .lines()
            .find(|l| l.starts_with(&format!("{name} = ")))
            .and_then(|l| l.split("version = \"=").nth(1))
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("{name} must be pinned with version = \"=X.Y.Z\""))
            .to_string()
    };
    pinned("llama-cpp-2");
    let sys = pinned("llama-cpp-sys-2");
    assert_file_contains(
        "crates/engine/src/system.rs",
        &format!("LLAMA_CPP_SYS_VERSION: &str = \"{sys}\""),
        &format!("system.rs must name llama-cpp-sys-2 {sys}, the version Cargo.toml pins"),
    );
}

#[test]
fn builds_target_the_native_cpu() {
    assert_file_contains(
        ".cargo/config.toml",
        "target-cpu=native",
        "llama.cpp is only built with SIMD under target-cpu=native",
    );
}

#[test]
fn architecture_md_maps_every_crate_and_states_invariants() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for entry in std::fs::read_dir(root().join("crates"))
        .expect("crates")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            arch.contains(&format!("crates/{name}")),
            "ARCHITECTURE.md does not describe crates/{name}"
        );
    }
    assert!(arch.matches("Architecture invariant:").count() >= 3);
}

#[test]
fn guard_is_pure_no_io_and_not_async() {
    let hits = files_using(
        "crates/guard",
        &[
            "std::fs",
            "std::io",
            "TcpStream",
            "UdpSocket",
            "async fn",
            ".await",
            "std::process",
            "std::env",
        ],
    );
    assert!(hits.is_empty(), "the guard must stay pure: {hits:?}");
    let deps = deps_of("outpost-guard");
    assert_links_none(
        "outpost-guard",
        &deps,
        &[
            "tokio",
            "reqwest",
            "ureq",
            "hyper",
            "axum",
            "outpost-engine",
        ],
    );
}

#[test]
fn only_the_server_speaks_http_among_libraries() {
    for krate in [
        "outpost-engine",
        "outpost-guard",
        "outpost-protocol",
        "outpost-store",
    ] {
        let deps = deps_of(krate);
        assert_links_none(krate, &deps, &["axum", "hyper", "tokio", "ureq", "reqwest"]);
    }
    let cli = deps_of("outpost-cli");
    assert!(
        !cli.iter().any(|d| d == "axum"),
        "the binary goes through outpost-server, not axum"
    );
}

/// Source files of one crate that contain any of `banned`.
fn files_using(krate_dir: &str, banned: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root().join(krate_dir).join("src"), &mut files);
    assert!(!files.is_empty(), "no sources in {krate_dir}");
    let mut hits = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for b in banned {
            if text.contains(b) {
                hits.push(format!("{} uses {b}", f.display()));
            }
        }
    }
    hits
}

#[test]
fn web_is_plumbing_that_links_no_other_outpost_crate() {
    let deps = deps_of("outpost-web");
    assert_tree_parsed(&deps, "axum");
    let ours: Vec<&String> = deps
        .iter()
        .filter(|d| d.starts_with("outpost-") && *d != "outpost-web")
        .collect();
    assert!(ours.is_empty(), "outpost-web links {ours:?}");
    assert_links_none(
        "outpost-web",
        &deps,
        &["sqlx", "llama-cpp-2", "reqwest", "ureq"],
    );
    for krate in ["crates/server/src/lib.rs", "crates/fleet/src/http/mod.rs"] {
        assert_file_contains(
            krate,
            "outpost_web::observe(",
            "both HTTP services wrap their router the same way",
        );
    }
}

#[test]
fn protocol_does_no_io_and_is_not_async() {
    let hits = files_using(
        "crates/protocol",
        &[
            "std::fs",
            "std::io",
            "std::net",
            "std::env",
            "std::process",
            "SystemTime",
            "async fn",
            ".await",
        ],
    );
    assert!(hits.is_empty(), "protocol must stay pure: {hits:?}");
}

/// `krate`'s dependency list `deps` holds none of `banned`.
fn assert_links_none(krate: &str, deps: &[String], banned: &[&str]) {
    for b in banned {
        assert!(!deps.iter().any(|d| d == b), "{krate} links {b}: {deps:?}");
    }
}

/// `deps` holds `required`: a dependency the crate surely has, so its
/// absence means the `cargo tree` output was not parsed.
fn assert_tree_parsed(deps: &[String], required: &str) {
    assert!(
        deps.iter().any(|d| d == required),
        "tree parse broken: {deps:?}"
    );
}

/// The root-relative file `rel` contains `needle`; else fail saying `why`.
fn assert_file_contains(rel: &str, needle: &str, why: &str) {
    let text = std::fs::read_to_string(root().join(rel)).expect(rel);
    assert!(text.contains(needle), "{why}");
}

/// Path and text of each Rust file under the root-relative `dir`, except
/// those under `except`.
fn sources_outside(dir: &str, except: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&root().join(dir), &mut files);
    let except = root().join(except);
    files
        .into_iter()
        .filter(|f| !f.starts_with(&except))
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read");
            (f, text)
        })
        .collect()
}

/// `dir` has no network or async code, and `krate` none of `banned` among
/// its direct dependencies (but `required`, which proves the tree parsed).
fn assert_offline(dir: &str, krate: &str, banned: &[&str], required: &str) {
    let hits = files_using(
        dir,
        &["std::net", "TcpStream", "UdpSocket", "async fn", ".await"],
    );
    assert!(hits.is_empty(), "{krate} is offline: {hits:?}");
    let deps = deps_of(krate);
    assert_links_none(krate, &deps, banned);
    assert_tree_parsed(&deps, required);
}

#[test]
fn store_opens_no_network_connection_and_links_no_engine() {
    assert_offline(
        "crates/store",
        "outpost-store",
        &[
            "tokio",
            "reqwest",
            "ureq",
            "hyper",
            "axum",
            "outpost-engine",
            "outpost-server",
        ],
        "outpost-protocol",
    );
}

#[test]
fn seal_is_offline_byte_work_and_links_no_other_outpost_crate() {
    assert_offline(
        "crates/seal",
        "outpost-seal",
        &[
            "tokio",
            "reqwest",
            "ureq",
            "hyper",
            "axum",
            "outpost-engine",
            "outpost-store",
            "outpost-protocol",
            "outpost-fleet",
            "outpost-agent",
        ],
        "hpke",
    );
    // Framing only: the ciphers, KEM and KDF come from audited crates.
    let hits = files_using(
        "crates/seal",
        &[
            "std::fs",
            "rotate_left(",
            "wrapping_mul(",
            "fn quarter_round",
        ],
    );
    assert!(
        hits.is_empty(),
        "outpost-seal writes no files and no primitives: {hits:?}"
    );
}

#[test]
fn convert_is_offline_file_work_and_links_no_engine() {
    assert_offline(
        "crates/convert",
        "outpost-convert",
        &[
            "tokio",
            "reqwest",
            "ureq",
            "hyper",
            "axum",
            "outpost-engine",
            "llama-cpp-2",
            "llama-cpp-sys-2",
        ],
        "safetensors",
    );
}

#[test]
fn index_is_offline_storage_and_links_no_engine() {
    assert_offline(
        "crates/index",
        "outpost-index",
        &[
            "tokio",
            "reqwest",
            "ureq",
            "hyper",
            "axum",
            "outpost-engine",
            "llama-cpp-2",
            "outpost-server",
        ],
        "rusqlite",
    );
}

#[test]
fn fleet_links_no_ml_code_and_keeps_sql_in_its_db_module() {
    let deps = deps_of("outpost-fleet");
    assert_links_none(
        "outpost-fleet",
        &deps,
        &[
            "outpost-engine",
            "outpost-server",
            "outpost-variants",
            "llama-cpp-2",
            "llama-cpp-sys-2",
            "ureq",
            "reqwest",
        ],
    );
    assert_tree_parsed(&deps, "sqlx");
    for (f, text) in sources_outside("crates/fleet/src", "crates/fleet/src/db") {
        assert!(
            !text.contains("sqlx") && !text.contains("SELECT ") && !text.contains("INSERT "),
            "{} uses SQL: keep it in crates/fleet/src/db/",
            f.display()
        );
    }
}

/// The fleet's decision maths (halt statistics, experiments' analysis,
/// the economics report) is pure: aggregates in, numbers out; no HTTP, no
/// storage, no clock or lock of the fleet.
#[test]
fn fleet_decision_maths_is_pure() {
    for rel in [
        "crates/fleet/src/stats.rs",
        "crates/fleet/src/experiment/mod.rs",
        "crates/fleet/src/economics.rs",
        // Roles and the route table: accounts.rs does the work.
        "crates/fleet/src/access.rs",
    ] {
        let text = std::fs::read_to_string(root().join(rel)).expect("read");
        for banned in [
            "axum",
            "crate::db",
            "crate::http",
            "crate::Fleet",
            "tokio",
            "std::fs",
            "Mutex",
        ] {
            assert!(
                !text.contains(banned),
                "{rel} uses {banned}: keep the maths pure (Fleet methods go in experiment/admin.rs, HTTP in http/)"
            );
        }
    }
}

#[test]
fn variants_is_offline_and_links_no_server_or_fleet() {
    assert_offline(
        "crates/variants",
        "outpost-variants",
        &[
            "tokio",
            "reqwest",
            "ureq",
            "hyper",
            "axum",
            "outpost-server",
            "outpost-fleet",
        ],
        "outpost-engine",
    );
}

#[test]
fn router_links_no_engine_and_makes_the_servers_outbound_http() {
    let deps = deps_of("outpost-router");
    assert_links_none(
        "outpost-router",
        &deps,
        &[
            "outpost-engine",
            "llama-cpp-2",
            "llama-cpp-sys-2",
            "outpost-server",
            "axum",
            "sqlx",
        ],
    );
    for required in ["outpost-guard", "outpost-protocol", "reqwest"] {
        assert!(
            deps.iter().any(|d| d == required),
            "outpost-router must depend on {required}: {deps:?}"
        );
    }
    // The server reaches the cloud only through the router.
    let server = deps_of("outpost-server");
    assert_links_none(
        "outpost-server",
        &server,
        &["reqwest", "ureq", "hyper-util"],
    );
    let hits = files_using(
        "crates/server",
        &["reqwest", "TcpStream::connect", "ureq::"],
    );
    assert!(
        hits.is_empty(),
        "outbound HTTP outside the router: {hits:?}"
    );
}

#[test]
fn only_the_guard_makes_redacted_values_and_the_cloud_takes_only_those() {
    assert_file_contains(
        "crates/guard/src/redact.rs",
        "pub struct Redacted<T>(T);",
        "Redacted's field must stay private to the guard",
    );
    assert_file_contains(
        "crates/router/src/cloud.rs",
        "body: &Redacted<CloudBody>",
        "CloudClient::send must take only a guard-made Redacted body",
    );
    // Spelled in two parts so this file does not match itself.
    let construct = concat!("Redacted", "(");
    for (f, text) in sources_outside("crates", "crates/guard") {
        assert!(
            !text.contains(construct),
            "{} builds a Redacted value: only outpost-guard may",
            f.display()
        );
    }
}

#[test]
fn agent_links_no_engine_server_or_variants_and_no_async_http() {
    // The whole tree, not only direct dependencies: the agent must keep
    // working when inference crashes, so no path may reach llama.cpp.
    let tree = tree_of("outpost-agent", false);
    assert_links_none(
        "outpost-agent",
        &tree,
        &[
            "outpost-engine",
            "outpost-server",
            "outpost-variants",
            "outpost-fleet",
            "llama-cpp-2",
            "llama-cpp-sys-2",
            "axum",
            "tokio",
            "reqwest",
        ],
    );
    assert!(
        tree.iter().any(|d| d == "ureq"),
        "the agent's fleet client is ureq (blocking)"
    );
}

#[test]
fn ffi_is_an_in_app_library_without_a_server_fleet_or_async_runtime() {
    // It is linked into apps: no daemon, no HTTP stack, no runtime of its
    // own (the router comes without its cloud client); the engine, the
    // guard and the agent are what it exposes.
    let tree = tree_of("outpost-ffi", false);
    assert_links_none(
        "outpost-ffi",
        &tree,
        &[
            "outpost-server",
            "outpost-fleet",
            "axum",
            "tokio",
            "reqwest",
            "sqlx",
        ],
    );
    let direct = tree_of("outpost-ffi", true);
    for needed in ["outpost-engine", "outpost-guard", "outpost-router"] {
        assert!(
            direct.iter().any(|d| d == needed),
            "outpost-ffi exposes {needed}"
        );
    }
}
