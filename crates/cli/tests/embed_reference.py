"""An independent reference for Outpost's embeddings: a NumPy forward pass of
the BERT encoder in a sentence-transformers checkpoint folder, written for
this test from the architecture's definition (not from llama.cpp), with
weights read by the `safetensors` package and tokens by the `tokenizers`
package (Hugging Face's own tokenizer, from tokenizer.json).

usage: embed_reference.py CHECKPOINT_DIR SENTENCES.txt OUT.jsonl
Writes one JSON line per sentence: {"tokens": [...ids], "embedding": [...]}.
"""
import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer


def erf(x):
    # Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), vectorised.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x):
    # BERT's "gelu" is the exact (erf) form.
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def main():
    folder, sentences_path, out_path = sys.argv[1:4]
    cfg = json.load(open(f"{folder}/config.json"))
    pooling = json.load(open(f"{folder}/1_Pooling/config.json"))
    assert pooling["pooling_mode_mean_tokens"], "this reference implements mean pooling"
    w = {k: v.astype(np.float64) for k, v in load_file(f"{folder}/model.safetensors").items() if v.dtype != np.int64}
    tok = Tokenizer.from_file(f"{folder}/tokenizer.json")
    tok.no_padding()
    tok.no_truncation()
    heads = cfg["num_attention_heads"]
    eps = cfg["layer_norm_eps"]
    sentences = [l.rstrip("\n") for l in open(sentences_path, encoding="utf-8")]
    with open(out_path, "w") as out:
        for s in sentences:
            ids = tok.encode(s).ids
            n = len(ids)
            x = w["embeddings.word_embeddings.weight"][ids]
            x = x + w["embeddings.position_embeddings.weight"][:n]
            x = x + w["embeddings.token_type_embeddings.weight"][0]
            x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
            d = x.shape[1]
            hd = d // heads
            for i in range(cfg["num_hidden_layers"]):
                p = f"encoder.layer.{i}."
                lin = lambda name, v: v @ w[p + name + ".weight"].T + w[p + name + ".bias"]
                q = lin("attention.self.query", x).reshape(n, heads, hd).transpose(1, 0, 2)
                k = lin("attention.self.key", x).reshape(n, heads, hd).transpose(1, 0, 2)
                v = lin("attention.self.value", x).reshape(n, heads, hd).transpose(1, 0, 2)
                scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
                scores = np.exp(scores - scores.max(-1, keepdims=True))
                scores /= scores.sum(-1, keepdims=True)
                ctx = (scores @ v).transpose(1, 0, 2).reshape(n, d)
                x = layer_norm(x + lin("attention.output.dense", ctx),
                               w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
                h = gelu(lin("intermediate.dense", x))
                x = layer_norm(x + lin("output.dense", h),
                               w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
            e = x.mean(0)
            e = e / np.linalg.norm(e)
            out.write(json.dumps({"tokens": ids, "embedding": [float(v) for v in e]}) + "\n")


if __name__ == "__main__":
    main()
