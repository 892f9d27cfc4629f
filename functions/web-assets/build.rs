//! Embeds `web/dist` (built by `scripts/build-web.sh`): every file raw and gzip-compressed,
//! with its content type. Without a build the table is empty and the hosts say so.

use std::io::Write;
use std::path::{Path, PathBuf};

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for (i, (path, file)) in files.iter().enumerate() {
        let raw = std::fs::read(file).unwrap_or_default();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = gz.write_all(&raw);
        let gz = gz.finish().unwrap_or_default();
        let gz_path = out.join(format!("asset-{i}.gz"));
        let _ = std::fs::write(&gz_path, &gz);
        table.push_str(&format!(
            "    Asset {{ path: {path:?}, content_type: {:?}, raw: include_bytes!({:?}), gzip: include_bytes!({:?}) }},\n",
            content_type(path),
            file.display().to_string(),
            gz_path.display().to_string(),
        ));
    }
    table.push(']');
    let _ = std::fs::write(out.join("assets.rs"), table);
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            files.push((url, path));
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
