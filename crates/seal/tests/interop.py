"""Independent implementations against outpost-seal's formats: libsodium
(PyNaCl) for the chunked XChaCha20-Poly1305 STREAM blob, pyhpke for the
RFC 9180 key wrap. Reads and writes files in the folder given as argv[1];
the framing (header layout, nonce = prefix | BE32 index | last flag, the
grant's info and aad) is rebuilt here from ARCHITECTURE.md, not imported.
"""
import pathlib
import struct
import sys

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt as xopen,
    crypto_aead_xchacha20poly1305_ietf_encrypt as xseal,
)
from pyhpke import AEADId, CipherSuite, KDFId, KEMId

d = pathlib.Path(sys.argv[1])
TAG = 16


def nonce(prefix, i, last):
    return prefix + struct.pack(">I", i) + bytes([1 if last else 0])


def open_blob(blob, key):
    header = blob[:40]
    assert header[:8] == b"OPSEAL\0\x01", header[:8]
    chunk, length = struct.unpack("<IQ", header[8:20])
    prefix = header[20:39]
    n = max(1, -(-length // chunk))
    out, at = bytearray(), 40
    for i in range(n):
        size = chunk if i + 1 < n else length - (n - 1) * chunk
        out += xopen(blob[at : at + size + TAG], header, nonce(prefix, i, i + 1 == n), key)
        at += size + TAG
    assert at == len(blob), (at, len(blob))
    return bytes(out)


def seal_blob(plain, key, chunk, prefix):
    n = max(1, -(-len(plain) // chunk))
    header = b"OPSEAL\0\x01" + struct.pack("<IQ", chunk, len(plain)) + prefix + b"\0"
    out = bytearray(header)
    for i in range(n):
        out += xseal(plain[i * chunk : (i + 1) * chunk], header, nonce(prefix, i, i + 1 == n), key)
    return bytes(out)


def grant(g):
    release, digest, device, expires, req = g.read_text().split("\n")[:5]
    info = b"outpost content key v1"
    for f in (release, digest, device):
        info += struct.pack("<I", len(f.encode())) + f.encode()
    aad = struct.pack("<Q", int(expires)) + bytes.fromhex(req)
    return info, aad


key = (d / "key").read_bytes()
plain = (d / "plain").read_bytes()

# 1. Outpost's blob opens under libsodium to the same bytes.
assert open_blob((d / "sealed").read_bytes(), key) == plain
# 2. libsodium's blob, framed the same way, for Outpost to open.
(d / "sealed-by-libsodium").write_bytes(seal_blob(plain, key, 4096, bytes(range(19))))

suite = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305)
info, aad = grant(d / "grant")
# 3. Outpost's wrap opens under pyhpke with the device's private key.
sk = suite.kem.deserialize_private_key((d / "device.secret").read_bytes())
enc, ct = (d / "wrapped.enc").read_bytes(), (d / "wrapped.ct").read_bytes()
assert suite.create_recipient_context(enc, sk, info=info).open(ct, aad=aad) == key
# 4. pyhpke's wrap of the key to the device's public key, for Outpost.
pk = suite.kem.deserialize_public_key((d / "device.public").read_bytes())
enc, sender = suite.create_sender_context(pk, info=info)
(d / "py.enc").write_bytes(enc)
(d / "py.ct").write_bytes(sender.seal(key, aad=aad))
print("interop ok")
