//! A GGUF v3 writer: metadata, tensor table, aligned tensor data.
//!
//! The file is written to `NAME.partial` beside the target and renamed when
//! complete and synced, so a killed conversion never leaves a file that looks
//! finished. Tensor data is written in the order the tensors were added.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{ConvertError, Result};

/// GGUF's default (and llama.cpp's expected) data alignment.
pub const ALIGNMENT: u64 = 32;

/// A metadata value, typed as GGUF stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U32(_) => 4,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::StrArray(_) | Value::I32Array(_) => 9,
        }
    }
}

/// The element types a tensor is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
}

impl TensorType {
    /// ggml's type id.
    pub fn ggml_id(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
        }
    }
    fn bytes_per_element(self) -> u64 {
        match self {
            TensorType::F32 => 4,
            TensorType::F16 => 2,
        }
    }
}

/// One tensor: its GGUF name, its shape as the source writes it (outermost
/// dimension first, as in safetensors and PyTorch), its stored type and its
/// values.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub ty: TensorType,
    pub data: Vec<f32>,
}

impl Tensor {
    fn n_bytes(&self) -> u64 {
        self.data.len() as u64 * self.ty.bytes_per_element()
    }
}

/// Collects metadata and tensors, then writes them.
#[derive(Debug, Default)]
pub struct GgufWriter {
    kv: Vec<(String, Value)>,
    tensors: Vec<Tensor>,
}

fn pad_to(pos: u64) -> u64 {
    pos.div_ceil(ALIGNMENT) * ALIGNMENT - pos
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Sets `key` (a later value for the same key replaces the earlier one).
    pub fn set(&mut self, key: &str, value: Value) {
        match self.kv.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.kv.push((key.to_string(), value)),
        }
    }

    /// Adds a tensor; its element count must match its shape.
    pub fn add_tensor(&mut self, tensor: Tensor) -> Result<()> {
        let expected: u64 = tensor.shape.iter().product();
        if expected != tensor.data.len() as u64 {
            return Err(ConvertError::Shape {
                tensor: tensor.name,
                shape: tensor.shape,
                elements: tensor.data.len() as u64,
            });
        }
        if self.tensors.iter().any(|t| t.name == tensor.name) {
            return Err(ConvertError::DuplicateTensor {
                tensor: tensor.name,
            });
        }
        self.tensors.push(tensor);
        Ok(())
    }

    /// Writes the file at `path` (through `path.partial` and a rename) and
    /// returns its size. `progress` is called with (bytes written, total).
    pub fn write(&self, path: &Path, mut progress: impl FnMut(u64, u64)) -> Result<u64> {
        let partial = partial_path(path);
        let io = |e: std::io::Error| ConvertError::Write {
            path: path.to_path_buf(),
            io: e,
        };
        let file = File::create(&partial).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let result = self.write_into(&mut w, &mut progress).and_then(|()| {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(file.metadata()?.len())
        });
        match result {
            Ok(size) => {
                std::fs::rename(&partial, path).map_err(io)?;
                Ok(size)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(io(e))
            }
        }
    }

    fn write_into<W: Write + Seek>(
        &self,
        w: &mut W,
        progress: &mut impl FnMut(u64, u64),
    ) -> std::io::Result<()> {
        w.write_all(b"GGUF")?;
        w.write_all(&3u32.to_le_bytes())?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(self.kv.len() as u64).to_le_bytes())?;
        for (key, value) in &self.kv {
            write_str(w, key)?;
            w.write_all(&value.type_id().to_le_bytes())?;
            write_value(w, value)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_str(w, &t.name)?;
            w.write_all(&(t.shape.len() as u32).to_le_bytes())?;
            // ggml's ne[0] is the innermost dimension: the source's last.
            for d in t.shape.iter().rev() {
                w.write_all(&d.to_le_bytes())?;
            }
            w.write_all(&t.ty.ggml_id().to_le_bytes())?;
            w.write_all(&offset.to_le_bytes())?;
            offset += t.n_bytes();
            offset += pad_to(offset);
        }
        let pos = w.stream_position()?;
        w.write_all(&vec![0u8; pad_to(pos) as usize])?;
        let total = offset;
        let mut done = 0u64;
        for t in &self.tensors {
            match t.ty {
                TensorType::F32 => {
                    for v in &t.data {
                        w.write_all(&v.to_le_bytes())?;
                    }
                }
                TensorType::F16 => {
                    for v in &t.data {
                        w.write_all(&half::f16::from_f32(*v).to_le_bytes())?;
                    }
                }
            }
            let pad = pad_to(t.n_bytes());
            w.write_all(&vec![0u8; pad as usize])?;
            done += t.n_bytes() + pad;
            progress(done, total);
        }
        w.flush()
    }
}

/// Where a file is written before it is renamed into place.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn write_str<W: Write>(w: &mut W, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value<W: Write>(w: &mut W, value: &Value) -> std::io::Result<()> {
    match value {
        Value::U32(v) => w.write_all(&v.to_le_bytes()),
        Value::F32(v) => w.write_all(&v.to_le_bytes()),
        Value::Bool(v) => w.write_all(&[u8::from(*v)]),
        Value::Str(s) => write_str(w, s),
        Value::StrArray(items) => {
            w.write_all(&8u32.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|s| write_str(w, s))
        }
        Value::I32Array(items) => {
            w.write_all(&5u32.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|v| w.write_all(&v.to_le_bytes()))
        }
    }
}
