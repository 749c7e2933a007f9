//! A small, strict reader for GGUF headers (metadata and tensor table).
//!
//! It runs before llama.cpp sees a file, so that a missing, foreign, truncated
//! or corrupt file is reported with a precise message instead of a generic
//! load failure, and it gives the per-tensor type mix that llama.cpp's API
//! does not expose. Tensor data is never read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

const MAGIC: &[u8; 4] = b"GGUF";
/// Refuse absurd counts before allocating for them (a corrupt header would
/// otherwise ask for terabytes).
const MAX_COUNT: u64 = 1 << 24;
const MAX_STRING: u64 = 1 << 26;

/// One metadata value. Arrays keep their length and, for short ones, values.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// Element type name and length; the elements are kept only when there
    /// are at most 64 of them (vocabularies are 50k+ entries).
    Array {
        elem: &'static str,
        len: u64,
        values: Vec<MetaValue>,
    },
}

impl MetaValue {
    /// The value as an unsigned integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::UInt(v) => Some(v),
            MetaValue::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The value as a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    /// ggml type id.
    pub ggml_type: u32,
    /// ggml type name, e.g. `q4_K`.
    pub type_name: String,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Bytes of data.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub path: PathBuf,
    pub version: u32,
    pub file_size: u64,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset where tensor data starts.
    pub data_offset: u64,
}

impl GgufHeader {
    /// Reads and validates the header of `path`: magic, version, every
    /// metadata entry, every tensor's type and shape, and that every tensor's
    /// data lies inside the file.
    pub fn read(path: &Path) -> Result<Self> {
        Self::read_arriving(path, None)
    }

    /// [`GgufHeader::read`] of a file still being written in order (a
    /// sealed model opening in the background): every read first waits
    /// until the bytes it covers have arrived.
    pub fn read_arriving(path: &Path, arrival: Option<&Arrival>) -> Result<Self> {
        let file = File::open(path).map_err(|source| EngineError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let meta = file.metadata().map_err(|source| EngineError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.is_dir() {
            return Err(bad(path, "it is a directory, not a file".into()));
        }
        let file_size = meta.len();
        let mut r = Reader {
            inner: BufReader::with_capacity(
                1 << 16,
                Arriving {
                    file,
                    pos: 0,
                    size: file_size,
                    arrival: arrival.cloned(),
                },
            ),
            pos: 0,
            path,
            file_size,
        };
        let mut magic = [0u8; 4];
        r.exact(&mut magic, "the magic number")?;
        if &magic != MAGIC {
            return Err(bad(
                path,
                format!(
                    "it does not start with the GGUF magic bytes (found {:?}); Outpost runs GGUF files, convert other formats with llama.cpp's convert_hf_to_gguf.py",
                    String::from_utf8_lossy(&magic)
                ),
            ));
        }
        let version = r.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(bad(
                path,
                format!("GGUF version {version} is not supported (2 and 3 are)"),
            ));
        }
        let n_tensors = r.count("the tensor count")?;
        let n_kv = r.count("the metadata count")?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let ty = r.u32(&format!("the type of metadata {key:?}"))?;
            let value = r.value(ty, &key, 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::with_capacity(usize::try_from(n_tensors).unwrap_or(0));
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor name #{i}"))?;
            let n_dims = r.u32(&format!("the rank of tensor {name:?}"))?;
            if n_dims == 0 || n_dims > 4 {
                return Err(bad(
                    path,
                    format!("tensor {name:?} has rank {n_dims} (1 to 4 allowed)"),
                ));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64(&format!("the shape of tensor {name:?}"))?);
            }
            let ggml_type = r.u32(&format!("the type of tensor {name:?}"))?;
            let offset = r.u64(&format!("the offset of tensor {name:?}"))?;
            let (type_name, n_bytes) = tensor_size(ggml_type, &dims)
                .map_err(|problem| bad(path, format!("tensor {name:?}: {problem}")))?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                type_name,
                offset,
                n_bytes,
            });
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(MetaValue::as_u64)
            .unwrap_or(32);
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(bad(
                path,
                format!("general.alignment = {alignment} is not a power of two"),
            ));
        }
        let data_offset = r.pos.div_ceil(alignment) * alignment;
        for t in &tensors {
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.n_bytes));
            match end {
                Some(end) if end <= file_size => {}
                _ => {
                    return Err(bad(
                        path,
                        format!(
                            "the file is truncated: tensor {:?} needs bytes up to {} but the file has {file_size}. Download it again",
                            t.name,
                            end.map_or_else(|| "u64 overflow".to_string(), |e| e.to_string()),
                        ),
                    ))
                }
            }
        }
        Ok(GgufHeader {
            path: path.to_path_buf(),
            version,
            file_size,
            metadata,
            tensors,
            data_offset,
        })
    }

    /// A metadata string value.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(MetaValue::as_str)
    }
    /// A metadata unsigned value.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.metadata.get(key).and_then(MetaValue::as_u64)
    }
    /// A metadata bool value.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.metadata.get(key).and_then(MetaValue::as_bool)
    }
    /// `general.architecture`, e.g. `llama` or `gemma3`.
    pub fn architecture(&self) -> Option<&str> {
        self.str("general.architecture")
    }
    /// A per-architecture key such as `<arch>.context_length`.
    pub fn arch_u64(&self, suffix: &str) -> Option<u64> {
        let arch = self.architecture()?;
        self.u64(&format!("{arch}.{suffix}"))
    }
    /// Parameters: elements over all tensors.
    pub fn n_params(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::n_elements).sum()
    }

    /// llama.cpp's name for `general.file_type` (the quantization the file
    /// was made with), e.g. `Q4_K_M`.
    pub fn file_type_name(&self) -> Option<&'static str> {
        // llama.cpp's llama_ftype numbering (include/llama.h).
        Some(match self.u64("general.file_type")? {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            7 => "Q8_0",
            8 => "Q5_0",
            9 => "Q5_1",
            10 => "Q2_K",
            11 => "Q3_K_S",
            12 => "Q3_K_M",
            13 => "Q3_K_L",
            14 => "Q4_K_S",
            15 => "Q4_K_M",
            16 => "Q5_K_S",
            17 => "Q5_K_M",
            18 => "Q6_K",
            19 => "IQ2_XXS",
            20 => "IQ2_XS",
            21 => "Q2_K_S",
            22 => "IQ3_XS",
            23 => "IQ3_XXS",
            24 => "IQ1_S",
            25 => "IQ4_NL",
            26 => "IQ3_S",
            27 => "IQ3_M",
            28 => "IQ2_S",
            29 => "IQ2_M",
            30 => "IQ4_XS",
            31 => "IQ1_M",
            32 => "BF16",
            36 => "TQ1_0",
            37 => "TQ2_0",
            38 => "MXFP4",
            _ => return None,
        })
    }

    /// Tensor count and bytes per ggml type name, largest share first.
    pub fn type_mix(&self) -> Vec<(String, usize, u64)> {
        let mut mix: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
        for t in &self.tensors {
            let e = mix.entry(&t.type_name).or_default();
            e.0 += 1;
            e.1 += t.n_bytes;
        }
        let mut v: Vec<_> = mix
            .into_iter()
            .map(|(k, (n, b))| (k.to_string(), n, b))
            .collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        v
    }
}

fn bad(path: &Path, problem: String) -> EngineError {
    EngineError::BadGguf {
        path: path.to_path_buf(),
        problem,
    }
}

/// Every tensor type this build of ggml can load, by name (`f32`, `q4_K`,
/// ...): what a device reports so the fleet sends only variants it loads.
pub fn ggml_type_names() -> Vec<String> {
    (0..llama_cpp_sys_2::GGML_TYPE_COUNT as u32)
        .filter_map(|ty| tensor_size(ty, &[256]).ok().map(|(name, _)| name))
        .collect()
}

/// Name and byte size of a tensor of ggml type `ty` and shape `dims`, using
/// ggml's own type table.
fn tensor_size(ty: u32, dims: &[u64]) -> std::result::Result<(String, u64), String> {
    if ty >= llama_cpp_sys_2::GGML_TYPE_COUNT as u32 {
        return Err(format!(
            "unknown ggml type id {ty}; the file may need a newer llama.cpp"
        ));
    }
    // SAFETY: `ty` is below GGML_TYPE_COUNT, so these index ggml's static
    // type-traits table in bounds; they only read it.
    let (blck, type_size, name) = unsafe {
        let t = ty as llama_cpp_sys_2::ggml_type;
        let name_ptr = llama_cpp_sys_2::ggml_type_name(t);
        let name = if name_ptr.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(name_ptr)
                .to_string_lossy()
                .into_owned()
        };
        (
            llama_cpp_sys_2::ggml_blck_size(t),
            llama_cpp_sys_2::ggml_type_size(t),
            name,
        )
    };
    if blck <= 0 || type_size == 0 || name.is_empty() || name == "NONE" {
        return Err(format!(
            "ggml type id {ty} ({name}) was removed from llama.cpp; re-quantize the model"
        ));
    }
    let blck = blck as u64;
    let ne0 = dims[0];
    if ne0 % blck != 0 {
        return Err(format!(
            "row length {ne0} is not a multiple of the {name} block size {blck}"
        ));
    }
    let mut n: u64 = type_size as u64;
    n = n.checked_mul(ne0 / blck).ok_or("size overflows u64")?;
    for &d in &dims[1..] {
        n = n.checked_mul(d).ok_or("size overflows u64")?;
    }
    Ok((name, n))
}

/// A file whose bytes arrive in order: see [`Arrival`].
struct Arriving {
    file: File,
    pos: u64,
    size: u64,
    arrival: Option<Arrival>,
}

impl Read for Arriving {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(a) = &self.arrival {
            let end = (self.pos + buf.len() as u64).min(self.size);
            a.wait_for(end).map_err(std::io::Error::other)?;
        }
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Waits until the first N bytes of a model file being written in order
/// have arrived; `Err` says why they never will (a sealed model whose
/// opening failed).
#[derive(Clone)]
pub struct Arrival(std::sync::Arc<dyn Fn(u64) -> std::result::Result<(), String> + Send + Sync>);

impl Arrival {
    pub fn new(
        wait_for: impl Fn(u64) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Arrival {
        Arrival(std::sync::Arc::new(wait_for))
    }

    pub fn wait_for(&self, bytes: u64) -> std::result::Result<(), String> {
        (self.0)(bytes)
    }
}

impl std::fmt::Debug for Arrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Arrival")
    }
}

struct Reader<'p> {
    inner: BufReader<Arriving>,
    pos: u64,
    path: &'p Path,
    file_size: u64,
}

impl Reader<'_> {
    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                bad(
                    self.path,
                    format!(
                        "the file is truncated: it ends at byte {} while reading {what}",
                        self.file_size
                    ),
                )
            } else {
                bad(
                    self.path,
                    format!("read error at byte {} ({what}): {e}", self.pos),
                )
            }
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        let mut b = [0u8; 1];
        self.exact(&mut b, what)?;
        Ok(b[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        let mut b = [0u8; 2];
        self.exact(&mut b, what)?;
        Ok(u16::from_le_bytes(b))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        let mut b = [0u8; 8];
        self.exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }
    fn count(&mut self, what: &str) -> Result<u64> {
        let n = self.u64(what)?;
        if n > MAX_COUNT {
            return Err(bad(
                self.path,
                format!("{what} is {n}, which is not plausible; the header is corrupt"),
            ));
        }
        Ok(n)
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        if len > MAX_STRING || self.pos + len > self.file_size {
            return Err(bad(
                self.path,
                format!("{what} claims {len} bytes at byte {}, past the end of the {}-byte file; the file is truncated or corrupt", self.pos, self.file_size),
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.exact(&mut buf, what)?;
        String::from_utf8(buf).map_err(|_| bad(self.path, format!("{what} is not valid UTF-8")))
    }
    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<MetaValue> {
        let what = format!("the value of {key:?}");
        Ok(match ty {
            0 => MetaValue::UInt(u64::from(self.u8(&what)?)),
            1 => MetaValue::Int(i64::from(self.u8(&what)? as i8)),
            2 => MetaValue::UInt(u64::from(self.u16(&what)?)),
            3 => MetaValue::Int(i64::from(self.u16(&what)? as i16)),
            4 => MetaValue::UInt(u64::from(self.u32(&what)?)),
            5 => MetaValue::Int(i64::from(self.u32(&what)? as i32)),
            6 => MetaValue::Float(f64::from(f32::from_bits(self.u32(&what)?))),
            7 => MetaValue::Bool(self.u8(&what)? != 0),
            8 => MetaValue::Str(self.string(&what)?),
            9 => {
                if depth > 0 {
                    return Err(bad(
                        self.path,
                        format!("{key:?} nests arrays, which GGUF does not allow"),
                    ));
                }
                let elem_ty = self.u32(&what)?;
                let len = self.count(&what)?;
                let mut values = Vec::new();
                for _ in 0..len {
                    let v = self.value(elem_ty, key, depth + 1)?;
                    if len <= 64 {
                        values.push(v);
                    }
                }
                MetaValue::Array {
                    elem: type_label(elem_ty),
                    len,
                    values,
                }
            }
            10 => MetaValue::UInt(self.u64(&what)?),
            11 => MetaValue::Int(self.u64(&what)? as i64),
            12 => MetaValue::Float(f64::from_bits(self.u64(&what)?)),
            other => {
                return Err(bad(
                    self.path,
                    format!(
                        "metadata {key:?} has unknown value type {other}; the header is corrupt"
                    ),
                ))
            }
        })
    }
}

fn type_label(ty: u32) -> &'static str {
    match ty {
        0 => "u8",
        1 => "i8",
        2 => "u16",
        3 => "i16",
        4 => "u32",
        5 => "i32",
        6 => "f32",
        7 => "bool",
        8 => "string",
        9 => "array",
        10 => "u64",
        11 => "i64",
        12 => "f64",
        _ => "?",
    }
}
