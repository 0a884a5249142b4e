//! File names as stored and served: whatever a client sends becomes one safe path segment.
//!
//! The name ends up in a blob key, a URL and a `Content-Disposition` header, so it keeps only
//! letters and digits (any script), `-`, `_` and `.`: no directory part, no control, format or
//! bidi characters (the `gnp.exe` trick), no quotes, `%` or `?`. Spaces become `_` as on
//! Discord; leading dots go so nothing is hidden or relative.

/// Longest stored name, in bytes.
pub const MAX_FILENAME_BYTES: usize = 100;
/// An extension longer than this is not worth keeping whole when a name is shortened.
const MAX_KEPT_EXTENSION_BYTES: usize = 16;

pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter_map(|c| {
            if c == ' ' {
                Some('_')
            } else if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    let name = cleaned.trim_start_matches('.');
    if name.is_empty() {
        return "unknown".to_owned();
    }
    shorten(name)
}

/// Cuts a name to [`MAX_FILENAME_BYTES`] on a character boundary, keeping a short extension.
fn shorten(name: &str) -> String {
    if name.len() <= MAX_FILENAME_BYTES {
        return name.to_owned();
    }
    let ext = name
        .rfind('.')
        .map(|i| &name[i..])
        .filter(|e| e.len() > 1 && e.len() <= MAX_KEPT_EXTENSION_BYTES)
        .unwrap_or("");
    let stem = &name[..name.len() - ext.len()];
    let mut out = String::with_capacity(MAX_FILENAME_BYTES);
    for c in stem.chars() {
        if out.len() + c.len_utf8() + ext.len() > MAX_FILENAME_BYTES {
            break;
        }
        out.push(c);
    }
    out.push_str(ext);
    out
}

/// The lower-case extension, without the dot.
pub fn extension(name: &str) -> Option<String> {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_specials_are_stripped() {
        for (raw, want) in [
            ("cat.png", "cat.png"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\windows\\system.ini", "system.ini"),
            ("/abs/path/x.txt", "x.txt"),
            ("<script>.html", "script.html"),
            ("a.svg", "a.svg"),
            ("my file (1).png", "my_file_1.png"),
            ("  lead.txt", "__lead.txt"),
            (".bashrc", "bashrc"),
            ("...", "unknown"),
            ("", "unknown"),
            ("dir/", "unknown"),
            ("new\nline\0.txt", "newline.txt"),
            ("evil\u{202e}gnp.exe", "evilgnp.exe"),
            ("quote\"d'.txt", "quoted.txt"),
            ("100%?.txt", "100.txt"),
            ("日本語 ファイル.txt", "日本語_ファイル.txt"),
            ("ça-va_bien.jpeg", "ça-va_bien.jpeg"),
        ] {
            assert_eq!(sanitize_filename(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn long_names_keep_their_extension() {
        let long = format!("{}.png", "a".repeat(300));
        let s = sanitize_filename(&long);
        assert_eq!(s.len(), MAX_FILENAME_BYTES);
        assert!(s.ends_with(".png"), "{s}");
        // Multi-byte characters are never cut in half.
        let wide = format!("{}.txt", "é".repeat(80));
        let s = sanitize_filename(&wide);
        assert!(s.len() <= MAX_FILENAME_BYTES && s.ends_with(".txt"), "{s}");
        // An absurd extension is not kept whole.
        let s = sanitize_filename(&format!("x.{}", "e".repeat(200)));
        assert_eq!(s.len(), MAX_FILENAME_BYTES);
    }

    #[test]
    fn every_result_is_a_valid_blob_segment() {
        use enrichment_protocol::Snowflake;
        use enrichment_storage::blobs::BlobKey;
        for raw in [
            "..",
            ".",
            "/",
            "\\",
            "a/../../b",
            "\u{0}",
            "....txt",
            "x".repeat(500).as_str(),
        ] {
            let name = sanitize_filename(raw);
            assert!(
                BlobKey::attachment(Snowflake(1), Snowflake(2), &name).is_ok(),
                "{raw:?} -> {name:?}"
            );
        }
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("a.HTML").as_deref(), Some("html"));
        assert_eq!(extension("archive.tar.gz").as_deref(), Some("gz"));
        assert_eq!(extension("noext"), None);
        assert_eq!(extension("trailing."), None);
    }
}
