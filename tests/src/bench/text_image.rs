//! Layers of source-like text for the bench's "real-shaped" image: many small files of
//! text that compresses the way program sources do (2–3× with fast gzip, not 100×), from
//! a seed so each bench image is distinct and every build of it identical.

use crate::images::layer::LayerBuilder;

/// Text layers per image.
pub const TEXT_LAYERS: usize = 3;
/// Uncompressed bytes of file content per text layer (3 × 26.7 MB ≈ 80 MB).
pub const LAYER_BYTES: usize = 80_000_000 / TEXT_LAYERS;
/// Files per directory.
const PER_DIR: usize = 40;

const WORDS: &[&str] = &[
    "buffer", "client", "config", "context", "count", "data", "entry", "error", "event", "field",
    "file", "handle", "header", "index", "input", "item", "key", "layer", "len", "list", "lock",
    "map", "message", "mode", "name", "node", "offset", "option", "output", "path", "pool",
    "queue", "reader", "record", "request", "response", "result", "root", "server", "size", "slot",
    "state", "status", "store", "stream", "task", "timer", "token", "value", "writer", "parse",
    "build", "check", "close", "create", "decode", "encode", "flush", "insert", "load", "open",
    "push", "read", "remove", "reset", "send", "start", "stop", "update", "write", "the", "a",
    "of", "to", "is", "when", "for", "with", "this",
];
const TYPES: &[&str] = &[
    "u32",
    "u64",
    "usize",
    "bool",
    "String",
    "&str",
    "Vec<u8>",
    "Option<u64>",
    "Result<()>",
    "Duration",
    "PathBuf",
    "Arc<Mutex<State>>",
    "HashMap<String, u64>",
];

/// A seeded xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn word(&mut self) -> &'static str {
        WORDS[self.below(WORDS.len())]
    }
    fn ident(&mut self) -> String {
        match self.below(3) {
            0 => format!("{}_{}", self.word(), self.word()),
            1 => format!("{}{}", self.word(), self.below(10)),
            _ => self.word().to_string(),
        }
    }
}

/// One line of source-like text.
fn line(r: &mut Rng, out: &mut String) {
    let indent = "    ".repeat(r.below(4));
    let l = match r.below(8) {
        0 => format!(
            "{indent}// {} {} {} {} {} {}.",
            r.word(),
            r.word(),
            r.word(),
            r.word(),
            r.word(),
            r.word()
        ),
        1 => format!(
            "{indent}let {} = {}.{}({}, {});",
            r.ident(),
            r.ident(),
            r.word(),
            r.ident(),
            r.below(1000)
        ),
        2 => format!(
            "{indent}pub fn {}({}: {}) -> {} {{",
            r.ident(),
            r.ident(),
            TYPES[r.below(TYPES.len())],
            TYPES[r.below(TYPES.len())]
        ),
        3 => format!("{indent}}}"),
        4 => format!(
            "{indent}if {} > {} {{ return Err(Error::{}(\"{} {}\")); }}",
            r.ident(),
            r.next() % 4096,
            r.word(),
            r.word(),
            r.word()
        ),
        5 => format!(
            "{indent}{}.{}_{}(&{}[{}..]);",
            r.ident(),
            r.word(),
            r.word(),
            r.ident(),
            r.below(512)
        ),
        6 => String::new(),
        _ => format!(
            "{indent}self.{} = {}::{}({:#x});",
            r.ident(),
            TYPES[r.below(TYPES.len())],
            r.word(),
            r.below(256)
        ),
    };
    out.push_str(&l);
    out.push('\n');
}

/// One file: 1 to 32 KiB of lines.
fn file(r: &mut Rng) -> String {
    let target = 1024 + r.below(31 * 1024);
    let mut s = String::with_capacity(target + 128);
    while s.len() < target {
        line(r, &mut s);
    }
    s
}

/// Text layer `n` of an image: `src/l<n>/dNNN/fNN.rs` files until [`LAYER_BYTES`].
pub fn layer(seed: u64, n: usize) -> LayerBuilder {
    let mut r = Rng(seed | 1);
    let top = format!("src/l{n}");
    let mut b = LayerBuilder::new().dir("src", 0o755).dir(&top, 0o755);
    let (mut bytes, mut i) = (0, 0);
    while bytes < LAYER_BYTES {
        let dir = format!("{top}/d{:03}", i / PER_DIR);
        if i % PER_DIR == 0 {
            b = b.dir(&dir, 0o755);
        }
        let text = file(&mut r);
        bytes += text.len();
        b = b.file(&format!("{dir}/f{:02}.rs", i % PER_DIR), 0o644, text);
        i += 1;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::layer::Compression;

    #[test]
    fn text_layer_is_many_files_that_compress_like_source() {
        let l = layer(7, 0);
        let tar = l.tar().unwrap();
        let gz = l.build(Compression::Gzip).unwrap().blob;
        let ratio = tar.len() as f64 / gz.len() as f64;
        assert!(tar.len() >= LAYER_BYTES, "{}", tar.len());
        assert!((2.0..8.0).contains(&ratio), "compression ratio {ratio:.2}");
        let again = layer(7, 0).tar().unwrap();
        assert_eq!(tar, again, "same seed, same layer");
    }
}
