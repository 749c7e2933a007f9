//! The index file: add, replace, delete, reopen, refusals, and search
//! against a naive f64 brute force written here.

use outpost_index::{Index, IndexError, NewChunk};

fn tmp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "outpost-index-{name}-{}.sqlite",
        std::process::id()
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
    p
}

/// Deterministic pseudo-random unit vectors (xorshift).
fn vectors(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            let mut v: Vec<f32> = (0..d)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 2000) as f32 / 1000.0 - 1.0
                })
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= n);
            v
        })
        .collect()
}

fn chunk(text: &str, v: Vec<f32>) -> NewChunk {
    NewChunk {
        start: 0,
        end: text.len(),
        text: text.into(),
        vector: v,
    }
}

#[test]
fn add_replace_remove_and_reopen() {
    let path = tmp("crud");
    let mut ix = Index::create(&path, "m", "sha256:aa", 4, 128, 32).expect("create");
    let meta = serde_json::json!({"title": "notes"});
    ix.add(
        "a",
        "a.txt",
        10,
        &meta,
        &[
            chunk("x", vec![1.0, 0.0, 0.0, 0.0]),
            chunk("y", vec![0.0, 1.0, 0.0, 0.0]),
        ],
    )
    .expect("add a");
    ix.add(
        "b",
        "b.txt",
        5,
        &serde_json::Value::Null,
        &[chunk("z", vec![0.0, 0.0, 1.0, 0.0])],
    )
    .expect("add b");
    assert_eq!((ix.info().docs, ix.info().chunks), (2, 3));
    let hits = ix.search(&[0.0, 0.9, 0.1, 0.0], 2).expect("search");
    assert_eq!(hits[0].doc, "a");
    assert_eq!(hits[0].text, "y");
    assert_eq!(hits[0].metadata["title"], "notes");
    assert_eq!(hits[1].text, "z");
    // Replacing a document drops its old chunks.
    ix.add(
        "a",
        "a.txt",
        3,
        &meta,
        &[chunk("w", vec![0.0, 0.0, 0.0, 1.0])],
    )
    .expect("replace a");
    assert_eq!((ix.info().docs, ix.info().chunks), (2, 2));
    assert!(ix
        .search(&[0.0, 1.0, 0.0, 0.0], 5)
        .expect("search")
        .iter()
        .all(|h| h.text != "y"));
    ix.remove("b").expect("remove b");
    assert!(matches!(ix.remove("b"), Err(IndexError::NoSuchDoc(_))));
    drop(ix);
    let ix = Index::open(&path).expect("reopen");
    assert_eq!((ix.info().docs, ix.info().chunks), (1, 1));
    assert_eq!(ix.docs().expect("docs")[0].id, "a");
    assert_eq!(
        ix.search(&[0.0, 0.0, 0.0, 1.0], 1).expect("search")[0].text,
        "w"
    );
}

#[test]
fn refusals_name_the_value() {
    let path = tmp("refuse");
    let mut ix = Index::create(&path, "minilm", "sha256:aa", 4, 128, 32).expect("create");
    let err = ix
        .add(
            "a",
            "a",
            1,
            &serde_json::Value::Null,
            &[chunk("x", vec![1.0; 3])],
        )
        .expect_err("dims");
    assert!(
        err.to_string().contains("3 dimensions; this index holds 4"),
        "{err}"
    );
    assert!(matches!(
        ix.add("", "a", 1, &serde_json::Value::Null, &[]),
        Err(IndexError::BadId(_))
    ));
    assert!(ix.search(&[1.0; 5], 3).is_err());
    let err = ix
        .check_model("other", "sha256:bb")
        .expect_err("model")
        .to_string();
    assert!(err.contains("made with model minilm"), "{err}");
    assert!(ix.check_model("minilm", "sha256:aa").is_ok());
    let err = Index::create(&path, "x", "y", 4, 1, 0)
        .err()
        .expect("exists")
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    let err = Index::open(&tmp("absent"))
        .err()
        .expect("missing")
        .to_string();
    assert!(err.contains("outpost index create"), "{err}");
}

#[test]
fn search_equals_a_naive_brute_force_on_10k_vectors() {
    let path = tmp("recall");
    let d = 64;
    let mut ix = Index::create(&path, "m", "sha256:aa", d, 128, 0).expect("create");
    let data = vectors(10_000, d, 7);
    for (i, group) in data.chunks(100).enumerate() {
        let chunks: Vec<NewChunk> = group
            .iter()
            .map(|v| chunk(&format!("{i}"), v.clone()))
            .collect();
        ix.add(
            &format!("doc{i}"),
            "gen",
            0,
            &serde_json::Value::Null,
            &chunks,
        )
        .expect("add");
    }
    let queries = vectors(50, d, 99);
    let mut found = 0;
    for q in &queries {
        let mut naive: Vec<(f64, usize)> = data
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    v.iter()
                        .zip(q)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum(),
                    i,
                )
            })
            .collect();
        naive.sort_by(|a, b| b.0.total_cmp(&a.0));
        let want: std::collections::HashSet<i64> =
            naive[..10].iter().map(|&(_, i)| i as i64 + 1).collect();
        let got = ix.nearest(q, 10).expect("nearest");
        found += got.iter().filter(|(_, id)| want.contains(id)).count();
    }
    let recall = found as f64 / (50.0 * 10.0);
    assert!(recall >= 0.98, "recall@10 {recall}");
}
