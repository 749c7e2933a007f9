//! The converter's parts on small inputs: the BERT table's name map, the
//! WordPiece vocabulary transform, and the GGUF writer read back by the
//! engine's strict GGUF reader (an independent parser of the same format).

use outpost_convert::arch::BERT;
use outpost_convert::gguf_write::{GgufWriter, Tensor, TensorType, Value};
use outpost_convert::vocab;
use outpost_engine::gguf::GgufHeader;

#[test]
fn bert_table_maps_layers_drops_the_pooler_and_names_unknown_tensors() {
    assert_eq!(
        BERT.map("encoder.layer.5.attention.self.query.weight", 6),
        Ok(Some("blk.5.attn_q.weight".into()))
    );
    assert_eq!(
        BERT.map("bert.encoder.layer.0.output.LayerNorm.bias", 6),
        Ok(Some("blk.0.layer_output_norm.bias".into()))
    );
    assert_eq!(
        BERT.map("embeddings.word_embeddings.weight", 6),
        Ok(Some("token_embd.weight".into()))
    );
    assert_eq!(BERT.map("pooler.dense.weight", 6), Ok(None));
    assert_eq!(BERT.map("embeddings.position_ids", 6), Ok(None));
    // A layer past the count, and a tensor the table does not know, are errors.
    assert!(BERT
        .map("encoder.layer.6.attention.self.query.weight", 6)
        .is_err());
    assert_eq!(
        BERT.map("encoder.layer.0.attention.self.rotary.weight", 6),
        Err("encoder.layer.0.attention.self.rotary.weight".into())
    );
    assert_eq!(BERT.required(6).len(), 5 + 6 * 16);
}

#[test]
fn wordpiece_becomes_phantom_space_with_control_specials() {
    let dir = std::env::temp_dir().join(format!("outpost-vocab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("tokenizer.json");
    std::fs::write(
        &path,
        r###"{"model": {"type": "WordPiece", "continuing_subword_prefix": "##",
              "vocab": {"[PAD]": 0, "[unused0]": 1, "[CLS]": 2, "[SEP]": 3, "[UNK]": 4, "the": 5, "##s": 6}},
            "added_tokens": [{"id": 0, "content": "[PAD]", "special": true},
                             {"id": 2, "content": "[CLS]", "special": true},
                             {"id": 3, "content": "[SEP]", "special": true},
                             {"id": 4, "content": "[UNK]", "special": true}]}"###,
    )
    .expect("write");
    let v = vocab::wordpiece(&path).expect("vocab");
    assert_eq!(
        v.tokens,
        [
            "[PAD]",
            "\u{2581}[unused0]",
            "[CLS]",
            "[SEP]",
            "[UNK]",
            "\u{2581}the",
            "s"
        ]
    );
    assert_eq!(v.types, [3, 1, 3, 3, 3, 1, 1]);
    assert_eq!(v.special.get("cls"), Some(&2));
    assert_eq!(v.special.get("sep"), Some(&3));
    // A gap in the ids, and another tokenizer model, are refused by name.
    std::fs::write(
        &path,
        r#"{"model": {"type": "WordPiece", "vocab": {"[CLS]": 0, "a": 2}}}"#,
    )
    .expect("write");
    let err = vocab::wordpiece(&path).expect_err("gap").to_string();
    assert!(err.contains("id 2"), "{err}");
    std::fs::write(&path, r#"{"model": {"type": "BPE", "vocab": {}}}"#).expect("write");
    let err = vocab::wordpiece(&path).expect_err("bpe").to_string();
    assert!(err.contains("`BPE`") && err.contains("WordPiece"), "{err}");
}

#[test]
fn written_gguf_reads_back_with_the_engines_reader() {
    let dir = std::env::temp_dir().join(format!("outpost-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("t.gguf");
    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::Str("bert".into()));
    w.set("bert.block_count", Value::U32(6));
    w.set("bert.attention.causal", Value::Bool(false));
    w.set(
        "tokenizer.ggml.tokens",
        Value::StrArray(vec!["a".into(), "b".into()]),
    );
    w.add_tensor(Tensor {
        name: "w".into(),
        shape: vec![3, 5],
        ty: TensorType::F16,
        data: (0..15).map(|i| i as f32).collect(),
    })
    .expect("tensor");
    w.add_tensor(Tensor {
        name: "b".into(),
        shape: vec![3],
        ty: TensorType::F32,
        data: vec![1.0, 2.0, 3.0],
    })
    .expect("tensor");
    assert!(w
        .add_tensor(Tensor {
            name: "bad".into(),
            shape: vec![2, 2],
            ty: TensorType::F32,
            data: vec![0.0; 3],
        })
        .is_err());
    let size = w.write(&path, |_, _| {}).expect("write");
    assert_eq!(size, std::fs::metadata(&path).expect("meta").len());
    let h = GgufHeader::read(&path).expect("the engine's reader accepts it");
    assert_eq!(h.version, 3);
    assert_eq!(h.architecture(), Some("bert"));
    assert_eq!(h.arch_u64("block_count"), Some(6));
    assert_eq!(h.bool("bert.attention.causal"), Some(false));
    assert_eq!(h.tensors.len(), 2);
    assert!(!dir.join("t.gguf.partial").exists());
}
