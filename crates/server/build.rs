//! Copies the few Swagger UI files the `/docs` page serves (`http/api_docs.rs` embeds them) out
//! of the Swagger UI release that the `utoipa-swagger-ui-vendored` crate carries, so the build
//! fetches nothing beyond crates.io and works offline.
//!
//! Why not `utoipa-swagger-ui` itself: it embeds the whole `dist/` folder (11 MB, mostly source
//! maps and bundles the page never loads, where these files are 1.6 MB), reads it from disk in
//! debug builds, and serves an initializer we would rewrite anyway for our own page and headers.

use std::io::Read;
use std::path::PathBuf;

/// The files of the release's `dist/` folder the page loads, by name.
const FILES: [&str; 3] = ["swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bytes = utoipa_swagger_ui_vendored::SWAGGER_UI_VENDORED;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .expect("the vendored Swagger UI is a zip archive");
    for name in FILES {
        // Entries are `swagger-ui-<version>/dist/<name>`.
        let suffix = format!("/dist/{name}");
        let entry = zip.file_names().find(|n| n.ends_with(&suffix)).map(str::to_owned);
        let entry = entry.unwrap_or_else(|| panic!("the vendored Swagger UI has no {suffix}"));
        let mut data = Vec::new();
        zip.by_name(&entry)
            .and_then(|mut f| f.read_to_end(&mut data).map_err(Into::into))
            .unwrap_or_else(|e| panic!("reading {entry} from the vendored Swagger UI: {e}"));
        std::fs::write(out.join(name), data).expect("OUT_DIR is writable");
    }
}
