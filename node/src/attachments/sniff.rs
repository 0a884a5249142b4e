//! What a file is, from its bytes, and how it may be served.
//!
//! The client's `Content-Type` is never trusted: the type comes from the first
//! [`SNIFF_BYTES`] of the file (magic numbers through `infer`, markup by its opening tag, then
//! UTF-8 text or opaque bytes). It is a pure function of those bytes, so the upload (which
//! records it in the message) and every later download (which sets the response headers from
//! it) agree without storing anything beside the blob.
//!
//! Serving is where the danger is: a browser that renders an uploaded HTML or SVG file on our
//! origin runs its scripts there. Only types a browser displays without running anything
//! (raster images, audio, video, plain text) are served inline, and only when the name does not
//! claim a scriptable type; markup is served as `application/octet-stream`, and everything
//! else as a download. `X-Content-Type-Options: nosniff` (set by the route) stops the browser
//! from second-guessing.

/// How much of a file's beginning decides its type (and holds image dimensions).
pub const SNIFF_BYTES: usize = 64 * 1024;

pub const OCTET_STREAM: &str = "application/octet-stream";
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// What the bytes say a file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sniffed {
    pub content_type: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// Sniffs the first `min(size, SNIFF_BYTES)` bytes of a file (`head` must be exactly that).
pub fn sniff(head: &[u8]) -> Sniffed {
    let head = &head[..head.len().min(SNIFF_BYTES)];
    let content_type = if is_svg(head) {
        "image/svg+xml".to_owned()
    } else if let Some(t) = infer::get(head) {
        t.mime_type().to_owned()
    } else if is_text(head) {
        TEXT_PLAIN.to_owned()
    } else {
        OCTET_STREAM.to_owned()
    };
    let (width, height) = if content_type.starts_with("image/") && content_type != "image/svg+xml" {
        match imagesize::blob_size(head) {
            Ok(s) => (u32::try_from(s.width).ok(), u32::try_from(s.height).ok()),
            Err(_) => (None, None),
        }
    } else {
        (None, None)
    };
    Sniffed {
        content_type,
        width,
        height,
    }
}

fn trim_start(mut b: &[u8]) -> &[u8] {
    loop {
        if let Some(rest) = b.strip_prefix(b"\xEF\xBB\xBF") {
            b = rest;
        } else if let Some((first, rest)) = b.split_first()
            && first.is_ascii_whitespace()
        {
            b = rest;
        } else {
            return b;
        }
    }
}

fn starts_with_ci(b: &[u8], prefix: &[u8]) -> bool {
    b.len() >= prefix.len() && b[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `<svg`, or an XML prolog or doctype followed by an `<svg` element.
fn is_svg(head: &[u8]) -> bool {
    let b = trim_start(head);
    if starts_with_ci(b, b"<svg") {
        return true;
    }
    (starts_with_ci(b, b"<?xml")
        || starts_with_ci(b, b"<!doctype svg")
        || starts_with_ci(b, b"<!--"))
        && b.windows(4).any(|w| w.eq_ignore_ascii_case(b"<svg"))
}

/// Valid UTF-8 without NUL bytes; a character cut by the end of a full sniff window counts.
fn is_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() == SNIFF_BYTES,
    }
}

/// Types a browser shows without running anything.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "audio/x-flac",
    "audio/m4a",
    "audio/mp4",
    TEXT_PLAIN,
];

/// Types a browser would interpret as a document with scripts.
const ACTIVE_TYPES: &[&str] = &[
    "text/html",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "application/xhtml+xml",
    "text/javascript",
    "application/javascript",
    "application/x-shockwave-flash",
];

/// Extensions that name scriptable documents, whatever the bytes look like.
const ACTIVE_EXTENSIONS: &[&str] = &[
    "html", "htm", "xhtml", "xht", "shtml", "svg", "svgz", "xml", "xsl", "xslt", "js", "mjs",
    "swf", "mht", "mhtml",
];

/// How a stored file goes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serving {
    /// The `Content-Type` header.
    pub content_type: String,
    /// `inline` rather than `attachment` in `Content-Disposition`.
    pub inline: bool,
}

pub fn serving(sniffed_type: &str, filename: &str) -> Serving {
    let active = ACTIVE_TYPES.contains(&sniffed_type);
    let active_name =
        super::names::extension(filename).is_some_and(|e| ACTIVE_EXTENSIONS.contains(&e.as_str()));
    Serving {
        content_type: if active {
            OCTET_STREAM.to_owned()
        } else {
            sniffed_type.to_owned()
        },
        inline: !active && !active_name && INLINE_TYPES.contains(&sniffed_type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x2 PNG (IHDR only, which is all a sniffer reads).
    fn png() -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn types_come_from_the_bytes() {
        let p = sniff(&png());
        assert_eq!(p.content_type, "image/png");
        assert_eq!((p.width, p.height), (Some(3), Some(2)));
        let gif = sniff(b"GIF89a\x05\x00\x07\x00\x00\x00\x00");
        assert_eq!(gif.content_type, "image/gif");
        assert_eq!((gif.width, gif.height), (Some(5), Some(7)));
        assert_eq!(sniff(b"%PDF-1.7\n...").content_type, "application/pdf");
        assert_eq!(
            sniff(b"PK\x03\x04\x14\x00\x00\x00").content_type,
            "application/zip"
        );
        assert_eq!(sniff(b"hello, world\n").content_type, TEXT_PLAIN);
        assert_eq!(sniff("héllo wörld".as_bytes()).content_type, TEXT_PLAIN);
        assert_eq!(sniff(b"").content_type, TEXT_PLAIN);
        assert_eq!(sniff(b"\xff\xfe\x00binary").content_type, OCTET_STREAM);
        assert_eq!(sniff(b"a\0b").content_type, OCTET_STREAM);
        // A PNG-named text file is text; a text-named PNG is a PNG.
        assert_eq!(sniff(b"not really a png").content_type, TEXT_PLAIN);
    }

    #[test]
    fn markup_is_recognised() {
        assert_eq!(
            sniff(b"<script>alert(1)</script>").content_type,
            "text/html"
        );
        assert_eq!(sniff(b"  <!DOCTYPE html><html>").content_type, "text/html");
        assert_eq!(
            sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>").content_type,
            "image/svg+xml"
        );
        assert_eq!(
            sniff(b"\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<svg></svg>").content_type,
            "image/svg+xml"
        );
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?><a/>").content_type,
            "text/xml"
        );
        assert_eq!(sniff(b"<SVG>").width, None);
    }

    #[test]
    fn utf8_cut_by_the_window_is_still_text() {
        let mut head = vec![b'a'; SNIFF_BYTES - 1];
        head.push(0xC3); // first byte of "é"
        assert_eq!(sniff(&head).content_type, TEXT_PLAIN);
        // The same cut at the real end of a file is not text.
        assert_eq!(sniff(b"abc\xC3").content_type, OCTET_STREAM);
        // Only the window counts: what follows it cannot change the answer.
        let mut longer = head.clone();
        longer.extend_from_slice(b"\xA9\xff\xff");
        assert_eq!(sniff(&longer), sniff(&head));
    }

    #[test]
    fn only_passive_types_are_inline() {
        let s = serving("image/png", "cat.png");
        assert_eq!(
            s,
            Serving {
                content_type: "image/png".into(),
                inline: true
            }
        );
        assert!(serving(TEXT_PLAIN, "notes.txt").inline);
        assert!(serving("video/mp4", "clip.mp4").inline);
        for (t, name) in [
            ("text/html", "page.html"),
            ("text/html", "page.txt"),
            ("image/svg+xml", "a.svg"),
            ("image/svg+xml", "a.png"),
            ("text/xml", "a.xml"),
        ] {
            let s = serving(t, name);
            assert_eq!(s.content_type, OCTET_STREAM, "{t} {name}");
            assert!(!s.inline, "{t} {name}");
        }
        // Plain text that calls itself HTML or JavaScript is a download.
        let s = serving(TEXT_PLAIN, "x.html");
        assert_eq!(s.content_type, TEXT_PLAIN);
        assert!(!s.inline);
        assert!(!serving(TEXT_PLAIN, "app.js").inline);
        assert!(!serving("application/pdf", "doc.pdf").inline);
        assert!(!serving(OCTET_STREAM, "blob.bin").inline);
    }
}
