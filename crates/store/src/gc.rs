//! Garbage collection: delete blobs and partial downloads nothing refers
//! to. Referenced are every model's active and previous blob, the blob of
//! every accepted manifest, and whatever the caller asks to keep. Any
//! reference that cannot be read stops GC before it deletes anything.

use std::collections::BTreeSet;
use std::fs;

use outpost_protocol::Digest;

use crate::error::{IoContext, Result};
use crate::Store;

/// What one GC run removed and kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Removed blobs and their sizes.
    pub removed: Vec<(Digest, u64)>,
    /// Removed partial downloads and their byte counts.
    pub removed_partials: Vec<(Digest, u64)>,
    /// Bytes freed in all.
    pub freed: u64,
    /// Blobs kept.
    pub kept: usize,
}

impl Store {
    /// Removes every blob and partial download not referenced (see the
    /// module doc) and not in `keep`.
    pub fn gc(&self, keep: &[Digest]) -> Result<GcReport> {
        let _refs = self.lock_refs();
        let mut referenced: BTreeSet<Digest> = keep.iter().copied().collect();
        for (_, p) in self.models()? {
            referenced.insert(p.active);
            referenced.extend(p.previous);
        }
        referenced.extend(self.manifest_digests()?);

        let mut report = GcReport::default();
        for (digest, len) in self.blobs()? {
            if referenced.contains(&digest) {
                report.kept += 1;
                continue;
            }
            let path = self.blob_path(&digest);
            fs::remove_file(&path).ctx("remove unreferenced blob", &path)?;
            crate::crash::crash_point("gc-midway");
            report.removed.push((digest, len));
            report.freed += len;
        }
        self.forget_installed(&referenced)?;
        for (digest, len) in self.partials()? {
            if referenced.contains(&digest) {
                continue;
            }
            let path = self.partial_path(&digest);
            fs::remove_file(&path).ctx("remove unreferenced partial download", &path)?;
            report.removed_partials.push((digest, len));
            report.freed += len;
        }
        Ok(report)
    }
}

impl Store {
    /// Removes the install records of blobs that are gone.
    fn forget_installed(&self, referenced: &BTreeSet<Digest>) -> Result<()> {
        for (model, _) in self.models()? {
            let dir = self.installed_dir(&model);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                    continue;
                };
                match Digest::from_file_name(stem) {
                    Ok(d) if !referenced.contains(&d) => {
                        let path = entry.path();
                        fs::remove_file(&path).ctx("remove install record", &path)?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use crate::StoreConfig;
    use outpost_protocol::ModelName;
    use proptest::prelude::*;

    #[test]
    fn gc_removes_only_what_nothing_refers_to() {
        let dir = TestDir::new("gc");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let m = ModelName::parse("m").expect("name");
        let [a, b, c, d, e] =
            [b"a", b"b", b"c", b"d", b"e"].map(|x| store.put(None, &x[..]).expect("put"));
        store.activate(&m, &a).expect("a");
        store.activate(&m, &b).expect("b");
        store.activate(&m, &c).expect("c"); // a is now two versions back
        let mut p = store
            .open_partial(&Digest::sha256(b"orphan"), 10)
            .expect("partial");
        p.append(b"orp").expect("append");
        drop(p);
        let r = store.gc(&[e]).expect("gc");
        let removed: BTreeSet<Digest> = r.removed.iter().map(|(d, _)| *d).collect();
        assert_eq!(removed, BTreeSet::from([a, d]));
        assert_eq!(r.removed_partials.len(), 1);
        assert_eq!(r.freed, 2 + 3);
        assert_eq!(r.kept, 3);
        for kept in [b, c, e] {
            assert!(store.contains(&kept));
        }
        assert!(store.partials().expect("partials").is_empty());
        // Nothing left to do.
        assert_eq!(store.gc(&[e]).expect("gc").removed, vec![]);
    }

    #[test]
    fn gc_stops_on_a_damaged_pointer() {
        let dir = TestDir::new("gcdamaged");
        let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
        let m = ModelName::parse("m").expect("name");
        let a = store.put(None, &b"a"[..]).expect("put");
        store.activate(&m, &a).expect("a");
        fs::write(store.pointer_path(&m), b"not json").expect("damage");
        assert!(store.gc(&[]).is_err());
        assert!(store.contains(&a), "nothing deleted on a damaged reference");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8),
        Activate(u8, u8),
        Rollback(u8),
        Gc,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..12).prop_map(Op::Put),
            (0u8..3, 0u8..12).prop_map(|(m, b)| Op::Activate(m, b)),
            (0u8..3).prop_map(Op::Rollback),
            Just(Op::Gc),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Whatever happened before, GC never removes a model's active or
        /// previous blob, and removes every other blob.
        #[test]
        fn gc_never_deletes_active_or_previous(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = TestDir::new("gcprop");
            let store = Store::open(dir.path(), StoreConfig::default()).expect("open");
            let models: Vec<ModelName> = (0..3).map(|i| ModelName::parse(&format!("m{i}")).expect("name")).collect();
            let blob = |i: u8| Digest::sha256(&[i]);
            for op in ops {
                match op {
                    Op::Put(i) => { store.put(None, &[i][..]).expect("put"); }
                    Op::Activate(m, i) => {
                        if store.contains(&blob(i)) {
                            store.activate(&models[m as usize], &blob(i)).expect("activate");
                        }
                    }
                    Op::Rollback(m) => { let _ = store.rollback(&models[m as usize]); }
                    Op::Gc => {
                        let before = store.models().expect("models");
                        store.gc(&[]).expect("gc");
                        let mut live = BTreeSet::new();
                        for (_, p) in &before {
                            prop_assert!(store.contains(&p.active));
                            live.insert(p.active);
                            if let Some(prev) = p.previous {
                                prop_assert!(store.contains(&prev));
                                live.insert(prev);
                            }
                        }
                        let left: BTreeSet<Digest> = store.blobs().expect("blobs").into_iter().map(|(d, _)| d).collect();
                        prop_assert_eq!(left, live);
                    }
                }
            }
        }
    }
}
