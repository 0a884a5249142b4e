//! File attachments end to end: Discord's multipart message create, the file route, limits,
//! names and types, and the removal of files with their messages, on the local-files backend
//! and on a real S3 server (s3s-fs).

use std::path::{Path, PathBuf};
use std::time::Duration;

use enrichment_node::Node;
use enrichment_node::config::{BlobKind, S3Config, Secret};
use enrichment_testkit::S3Server;
use enrichment_testkit::s3::{ACCESS_KEY, BUCKET, SECRET_KEY};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::gw::{ALL, Gw};
use crate::support::*;

const ATTACH_FILES: u64 = 1 << 15;

/// A PNG header (signature and IHDR) followed by `extra` bytes: enough for any sniffer.
fn png(width: u32, height: u32, extra: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    b.extend_from_slice(&width.to_be_bytes());
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    b.extend((0..extra).map(|i| (i * 7 % 251) as u8));
    b
}

/// Bytes that are no known format and not UTF-8.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8 | 0x80
        })
        .collect()
}

/// One file part: name as sent, bytes, and the type the client claims (never believed).
struct Upload<'a> {
    name: &'a str,
    bytes: Vec<u8>,
    claimed: &'a str,
}

fn file<'a>(name: &'a str, bytes: Vec<u8>, claimed: &'a str) -> Upload<'a> {
    Upload {
        name,
        bytes,
        claimed,
    }
}

/// Posts a multipart message: `payload_json` (when given) first, then `files[n]`.
async fn post_files(
    t: &TestNode,
    token: &str,
    channel: &str,
    payload: Option<Value>,
    files: Vec<Upload<'_>>,
) -> Resp {
    let mut form = Form::new();
    if let Some(p) = payload {
        form = form.text("payload_json", p.to_string());
    }
    for (i, f) in files.into_iter().enumerate() {
        let part = Part::bytes(f.bytes)
            .file_name(f.name.to_owned())
            .mime_str(f.claimed)
            .unwrap();
        form = form.part(format!("files[{i}]"), part);
    }
    let res = t
        .http
        .post(format!("{}/channels/{channel}/messages", t.base))
        .header("Authorization", token)
        .multipart(form)
        .send()
        .await
        .expect("request sent");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    Resp {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    }
}

/// A served file: status, headers, bytes.
async fn fetch(t: &TestNode, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let res = t.http.get(url).send().await.expect("request sent");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.expect("body").to_vec())
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Every regular file under `dir`, recursively (none when `dir` does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The files of the local blob store (its temporary directory aside).
fn fs_blobs(t: &TestNode) -> Vec<PathBuf> {
    let root = t.config.data_dir.join("blobs");
    files_under(&root)
        .into_iter()
        .filter(|p| !p.starts_with(root.join(".tmp")))
        .collect()
}

/// Waits for the background blob removal that follows a delete.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn s3_config(server: &S3Server) -> S3Config {
    S3Config {
        endpoint: Some(server.endpoint()),
        bucket: Some(BUCKET.into()),
        region: "us-east-1".into(),
        access_key: Some(Secret::new(ACCESS_KEY)),
        secret_key: Some(Secret::new(SECRET_KEY)),
        path_style: true,
    }
}

async fn s3_node(server: &S3Server, max_bytes: Option<u64>) -> TestNode {
    let s3 = s3_config(server);
    TestNode::start_with(move |c| {
        c.blobs = BlobKind::S3;
        c.s3 = s3;
        if let Some(m) = max_bytes {
            c.attachments.max_bytes = m;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_serve_and_gateway_on_files() {
    // These checks read the files backend's directory, whatever the run's backends.
    let t = TestNode::start_with(|c| c.blobs = BlobKind::Fs).await;
    let owner = t.register("attowner").await;
    let bob = t.register("attbob").await;
    let (gid, ch) = t.guild(&owner, "Files").await;
    t.join(&owner, &ch, &bob).await;
    let (mut gw, _) = Gw::identify(&t, &bob.token, ALL).await;
    gw.guild_create(&gid).await;

    let picture = png(3, 2, 70_000);
    let notes = "héllo\nworld\n".as_bytes().to_vec();
    let m = post_files(
        &t,
        &owner.token,
        &ch,
        Some(json!({
            "content": "two files",
            "attachments": [{"id": 0, "description": "a cat"}, {"id": 1}],
        })),
        vec![
            file("my cat (1).png", picture.clone(), "text/html"),
            file("../notes.txt", notes.clone(), "image/png"),
        ],
    )
    .await
    .ok(200);
    assert_eq!(m["content"], "two files");
    let atts = m["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 2, "{m}");
    let (a, b) = (&atts[0], &atts[1]);
    assert_eq!(a["filename"], "my_cat_1.png");
    assert_eq!(a["description"], "a cat");
    assert_eq!(a["content_type"], "image/png");
    assert_eq!(a["size"], picture.len());
    assert_eq!(
        (a["width"].as_u64(), a["height"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(b["filename"], "notes.txt");
    assert_eq!(b["content_type"], "text/plain; charset=utf-8");
    assert_eq!(b["size"], notes.len());
    assert!(
        b.get("description").is_none() && b.get("width").is_none(),
        "{b}"
    );
    let root = t.base.trim_end_matches("/api/v10");
    for att in atts {
        let url = att["url"].as_str().unwrap();
        assert_eq!(
            url,
            format!(
                "{root}/attachments/{ch}/{}/{}",
                id_of(att),
                att["filename"].as_str().unwrap()
            )
        );
        assert_eq!(att["proxy_url"], url);
    }

    // The files come back byte for byte, typed from their bytes, never sniffed by the browser.
    let (status, h, bytes) = fetch(&t, a["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(bytes == picture, "the picture differs");
    assert_eq!(header(&h, "content-type"), "image/png");
    assert_eq!(header(&h, "content-length"), picture.len().to_string());
    assert_eq!(
        header(&h, "content-disposition"),
        "inline; filename=\"my_cat_1.png\""
    );
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert!(header(&h, "cache-control").contains("max-age="));
    let (status, h, bytes) = fetch(&t, b["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, notes);
    assert_eq!(header(&h, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        header(&h, "content-disposition"),
        "inline; filename=\"notes.txt\""
    );
    // An unknown file is a Discord-style 404, whatever the path holds.
    for path in [
        format!("/attachments/{ch}/1/nope.png"),
        format!("/attachments/{ch}/{}/other.png", id_of(a)),
        "/attachments/x/y/z".to_owned(),
        format!("/attachments/{ch}/{}/..", id_of(a)),
    ] {
        let (status, _, body) = fetch(&t, &format!("{root}{path}")).await;
        assert_eq!(status, 404, "{path}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], 0, "{path}");
    }

    // REST and the gateway carry the same attachments.
    let got = t
        .get(
            &format!("/channels/{ch}/messages/{}", id_of(&m)),
            &bob.token,
        )
        .await
        .ok(200);
    assert_eq!(got["attachments"], m["attachments"]);
    let created = gw.dispatch("MESSAGE_CREATE").await;
    assert_eq!(created["id"], m["id"]);
    assert_eq!(created["attachments"], m["attachments"]);

    // The JSON body works as before, and so does a multipart body without files.
    assert_eq!(
        t.send(&owner, &ch, "plain json").await["attachments"],
        json!([])
    );
    let only_json = post_files(
        &t,
        &owner.token,
        &ch,
        Some(json!({"content": "no files"})),
        vec![],
    )
    .await
    .ok(200);
    assert_eq!(only_json["content"], "no files");
    post_files(&t, &owner.token, &ch, Some(json!({})), vec![])
        .await
        .err(400, 50006);
    // A message may be files alone.
    let bare = post_files(
        &t,
        &owner.token,
        &ch,
        None,
        vec![file("x.bin", noise(10), "text/plain")],
    )
    .await
    .ok(200);
    assert_eq!(bare["content"], "");
    assert_eq!(
        bare["attachments"][0]["content_type"],
        "application/octet-stream"
    );
    let (_, h, _) = fetch(&t, bare["attachments"][0]["url"].as_str().unwrap()).await;
    assert_eq!(
        header(&h, "content-disposition"),
        "attachment; filename=\"x.bin\""
    );
    let blob_dir = t.config.data_dir.join("blobs").join(&ch);
    assert_eq!(files_under(&blob_dir).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_with_their_messages_and_channels() {
    let t = TestNode::start_with(|c| {
        c.blobs = BlobKind::Fs;
        c.attachments.max_files = 2;
    })
    .await;
    let owner = t.register("attdel").await;
    let (gid, ch) = t.guild(&owner, "Deletions").await;
    let send = |name: &'static str| {
        let t = &t;
        let token = owner.token.clone();
        let ch = ch.clone();
        async move {
            post_files(
                t,
                &token,
                &ch,
                None,
                vec![file(name, b"data".to_vec(), "text/plain")],
            )
            .await
            .ok(200)
        }
    };

    // Too many files: refused, and nothing is left of the ones already stored.
    post_files(
        &t,
        &owner.token,
        &ch,
        None,
        vec![
            file("1.txt", b"1".to_vec(), "text/plain"),
            file("2.txt", b"2".to_vec(), "text/plain"),
            file("3.txt", b"3".to_vec(), "text/plain"),
        ],
    )
    .await
    .err(400, 50035);
    assert_eq!(fs_blobs(&t), Vec::<PathBuf>::new());
    // A refused message takes its files with it (here: content too long).
    post_files(
        &t,
        &owner.token,
        &ch,
        Some(json!({"content": "x".repeat(2001)})),
        vec![file("a.txt", b"a".to_vec(), "text/plain")],
    )
    .await
    .err(400, 50035);
    assert_eq!(fs_blobs(&t), Vec::<PathBuf>::new());

    // An edit that leaves an attachment out removes it.
    let m = post_files(
        &t,
        &owner.token,
        &ch,
        Some(json!({"content": "keep one"})),
        vec![
            file("keep.txt", b"k".to_vec(), "text/plain"),
            file("drop.txt", b"d".to_vec(), "text/plain"),
        ],
    )
    .await
    .ok(200);
    let keep = id_of(&m["attachments"][0]);
    let edited = t
        .patch(
            &format!("/channels/{ch}/messages/{}", id_of(&m)),
            &owner.token,
            json!({"attachments": [{"id": keep}]}),
        )
        .await
        .ok(200);
    assert_eq!(edited["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(edited["attachments"][0]["filename"], "keep.txt");
    eventually("the dropped file is gone", || fs_blobs(&t).len() == 1).await;
    assert!(fs_blobs(&t)[0].ends_with(format!("{keep}/keep.txt")));

    // Deleting the message removes its file.
    t.delete(
        &format!("/channels/{ch}/messages/{}", id_of(&m)),
        &owner.token,
    )
    .await
    .ok(204);
    eventually("the message's file is gone", || fs_blobs(&t).is_empty()).await;

    // Bulk delete.
    let a = send("a.txt").await;
    let b = send("b.txt").await;
    assert_eq!(fs_blobs(&t).len(), 2);
    t.post(
        &format!("/channels/{ch}/messages/bulk-delete"),
        &owner.token,
        json!({"messages": [id_of(&a), id_of(&b)]}),
    )
    .await
    .ok(204);
    eventually("bulk-deleted files are gone", || fs_blobs(&t).is_empty()).await;

    // Deleting a channel removes its files; another channel's stay.
    let other = id_of(
        &t.post(
            &format!("/guilds/{gid}/channels"),
            &owner.token,
            json!({"name": "other"}),
        )
        .await
        .ok(201),
    );
    send("c.txt").await;
    post_files(
        &t,
        &owner.token,
        &other,
        None,
        vec![file("o.txt", b"o".to_vec(), "text/plain")],
    )
    .await
    .ok(200);
    t.delete(&format!("/channels/{ch}"), &owner.token)
        .await
        .ok(200);
    eventually("the channel's files are gone", || fs_blobs(&t).len() == 1).await;
    assert!(fs_blobs(&t)[0].starts_with(t.config.data_dir.join("blobs").join(&other)));

    // Deleting the guild removes the rest.
    t.delete(&format!("/guilds/{gid}"), &owner.token)
        .await
        .ok(204);
    eventually("the guild's files are gone", || fs_blobs(&t).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_round_trip_of_a_large_file_and_delete() {
    let server = S3Server::start().unwrap();
    let t = s3_node(&server, None).await;
    let owner = t.register("s3big").await;
    let (_, ch) = t.guild(&owner, "Big").await;
    let data = noise(10 << 20);
    let m = post_files(
        &t,
        &owner.token,
        &ch,
        Some(json!({"content": "ten mebibytes"})),
        vec![file("big.bin", data.clone(), "application/zip")],
    )
    .await
    .ok(200);
    let att = &m["attachments"][0];
    assert_eq!(att["size"], data.len());
    assert_eq!(att["content_type"], "application/octet-stream");
    let (status, h, bytes) = fetch(&t, att["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-length"), data.len().to_string());
    assert!(bytes == data, "the file came back different");
    let stored = files_under(&server.bucket_dir());
    assert_eq!(stored.len(), 1);
    assert!(stored[0].ends_with(format!("{ch}/{}/big.bin", id_of(att))));
    assert_eq!(std::fs::read(&stored[0]).unwrap(), data);

    t.delete(
        &format!("/channels/{ch}/messages/{}", id_of(&m)),
        &owner.token,
    )
    .await
    .ok(204);
    eventually("the object is gone from the bucket", || {
        files_under(&server.bucket_dir()).is_empty()
    })
    .await;
    let (status, _, _) = fetch(&t, att["url"].as_str().unwrap()).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_over_the_limit_is_refused_while_streaming() {
    let server = S3Server::start().unwrap();
    let t = s3_node(&server, Some(1 << 20)).await;
    let owner = t.register("s3limit").await;
    let (_, ch) = t.guild(&owner, "Limits").await;
    // Alone, and after a file that fit (which must go too).
    for files in [
        vec![file("huge.bin", noise(3 << 20), "image/png")],
        vec![
            file("fits.png", png(1, 1, 1000), "image/png"),
            file("huge.bin", noise(3 << 20), "image/png"),
        ],
    ] {
        let r = post_files(
            &t,
            &owner.token,
            &ch,
            Some(json!({"content": "big"})),
            files,
        )
        .await;
        r.err(413, 40005);
        assert_eq!(files_under(&server.bucket_dir()), Vec::<PathBuf>::new());
    }
    // Exactly the limit is fine.
    let m = post_files(
        &t,
        &owner.token,
        &ch,
        None,
        vec![file("exact.bin", noise(1 << 20), "image/png")],
    )
    .await
    .ok(200);
    assert_eq!(m["attachments"][0]["size"], 1 << 20);
    // Only that message exists.
    let history = t
        .get(&format!("/channels/{ch}/messages"), &owner.token)
        .await
        .ok(200);
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(files_under(&server.bucket_dir()).len(), 1);
    let metrics = t
        .http
        .get(format!("{}/metrics", t.base.trim_end_matches("/api/v10")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "enrichment_attachment_refused_total",
        "enrichment_attachment_bytes_total",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_names_and_types_are_neutralised() {
    let server = S3Server::start().unwrap();
    let t = s3_node(&server, None).await;
    let owner = t.register("s3names").await;
    let (_, ch) = t.guild(&owner, "Names").await;
    let m = post_files(
        &t,
        &owner.token,
        &ch,
        None,
        vec![
            file(
                "../../etc/passwd",
                b"root:x:0:0::/root:/bin/sh\n".to_vec(),
                "text/plain",
            ),
            file(
                "<script>.html",
                b"<script>alert(document.cookie)</script>".to_vec(),
                "image/png",
            ),
            file(
                "a.svg",
                b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
                "image/png",
            ),
        ],
    )
    .await
    .ok(200);
    let atts = m["attachments"].as_array().unwrap();
    let names: Vec<&str> = atts
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["passwd", "script.html", "a.svg"]);
    let types: Vec<&str> = atts
        .iter()
        .map(|a| a["content_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["text/plain; charset=utf-8", "text/html", "image/svg+xml"]
    );
    // Every object sits under the channel's prefix in the bucket, nowhere else.
    let stored = files_under(&server.bucket_dir());
    assert_eq!(stored.len(), 3);
    for p in &stored {
        assert!(
            p.starts_with(server.bucket_dir().join(&ch)),
            "{}",
            p.display()
        );
    }
    let served: Vec<(String, String)> = {
        let mut out = Vec::new();
        for a in atts {
            let (status, h, _) = fetch(&t, a["url"].as_str().unwrap()).await;
            assert_eq!(status, 200);
            assert_eq!(header(&h, "x-content-type-options"), "nosniff");
            out.push((
                header(&h, "content-type").to_owned(),
                header(&h, "content-disposition").to_owned(),
            ));
        }
        out
    };
    assert_eq!(
        served,
        [
            (
                "text/plain; charset=utf-8".to_owned(),
                "inline; filename=\"passwd\"".to_owned()
            ),
            (
                "application/octet-stream".to_owned(),
                "attachment; filename=\"script.html\"".to_owned()
            ),
            (
                "application/octet-stream".to_owned(),
                "attachment; filename=\"a.svg\"".to_owned()
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_without_attach_files_nothing_is_written() {
    let server = S3Server::start().unwrap();
    let t = s3_node(&server, None).await;
    let owner = t.register("s3perm").await;
    let user = t.register("s3noattach").await;
    let (gid, ch) = t.guild(&owner, "Perms").await;
    t.join(&owner, &ch, &user).await;
    t.put(
        &format!("/channels/{ch}/permissions/{gid}"),
        &owner.token,
        json!({"type": 0, "allow": "0", "deny": ATTACH_FILES.to_string()}),
    )
    .await
    .ok(204);
    // Refused before any byte is stored, even for a file bigger than the request buffers.
    for payload in [None, Some(json!({"content": "look"}))] {
        post_files(
            &t,
            &user.token,
            &ch,
            payload,
            vec![file("x.png", png(2, 2, 2 << 20), "image/png")],
        )
        .await
        .err(403, 50013);
        assert_eq!(files_under(&server.bucket_dir()), Vec::<PathBuf>::new());
    }
    // Text still goes through.
    t.send(&user, &ch, "words only").await;
    // A stranger cannot upload at all.
    let stranger = t.register("s3stranger").await;
    let r = post_files(
        &t,
        &stranger.token,
        &ch,
        None,
        vec![file("x.txt", b"x".to_vec(), "text/plain")],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(files_under(&server.bucket_dir()), Vec::<PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_startup_checks_the_bucket() {
    let server = S3Server::start().unwrap();
    let start = |s3: S3Config| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut c = test_config(dir.path());
        c.blobs = BlobKind::S3;
        c.s3 = s3;
        match Node::start(c).await {
            Ok(n) => {
                n.stop().await;
                panic!("the node started with a bad S3 setting")
            }
            Err(e) => format!("{e:#}"),
        }
    };
    let err = start(S3Config {
        secret_key: Some(Secret::new("not-the-secret")),
        ..s3_config(&server)
    })
    .await;
    assert!(err.contains("ENRICHMENT_S3_SECRET_KEY"), "{err}");
    assert!(err.contains("access denied"), "{err}");
    let (_refusing, port) = enrichment_testkit::refusing_port().unwrap();
    let err = start(S3Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..s3_config(&server)
    })
    .await;
    assert!(err.contains("ENRICHMENT_S3_ENDPOINT"), "{err}");
    assert!(err.contains("cannot reach"), "{err}");
    let err = start(S3Config {
        bucket: Some("no-such-bucket".into()),
        ..s3_config(&server)
    })
    .await;
    assert!(err.contains("ENRICHMENT_S3_BUCKET"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_the_multipart_body() {
    let t = TestNode::start().await;
    let doc: Value = t
        .http
        .get(format!("{}/openapi.json", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let content =
        &doc["paths"]["/channels/{channel_id}/messages"]["post"]["requestBody"]["content"];
    assert!(content["application/json"].is_object(), "{content}");
    let multipart = &content["multipart/form-data"]["schema"]["$ref"];
    assert_eq!(
        multipart, "#/components/schemas/MultipartMessage",
        "{content}"
    );
    let schema = &doc["components"]["schemas"]["MultipartMessage"]["properties"];
    assert!(
        schema["payload_json"].is_object() && schema["files"].is_object(),
        "{schema}"
    );
}

/// discord.js sends the files first and `payload_json` last; the description still applies,
/// and the part's own file name is kept (it is already the stored name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_json_after_the_files() {
    let t = TestNode::start().await;
    let owner = t.register("attorder").await;
    let (_, ch) = t.guild(&owner, "Order").await;
    let form = Form::new()
        .part(
            "files[0]",
            Part::bytes(b"first".to_vec()).file_name("one.txt"),
        )
        .part(
            "files[1]",
            Part::bytes(png(4, 4, 10)).file_name("two.png"),
        )
        .text(
            "payload_json",
            json!({
                "content": "late payload",
                "attachments": [{"id": 1, "description": "second", "filename": "renamed.png"}, {"id": 0}],
            })
            .to_string(),
        );
    let m: Value = t
        .http
        .post(format!("{}/channels/{ch}/messages", t.base))
        .header("Authorization", &owner.token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["content"], "late payload", "{m}");
    assert_eq!(m["attachments"][0]["filename"], "one.txt");
    assert!(m["attachments"][0].get("description").is_none());
    assert_eq!(m["attachments"][1]["filename"], "two.png");
    assert_eq!(m["attachments"][1]["description"], "second");
    assert_eq!(m["attachments"][1]["width"], 4);
    // Named in payload_json before its file: the new name is the stored one.
    let m = post_files(
        &t,
        &owner.token,
        &ch,
        Some(json!({"attachments": [{"id": 0, "filename": "new name.txt"}]})),
        vec![file("old.txt", b"x".to_vec(), "text/plain")],
    )
    .await
    .ok(200);
    assert_eq!(m["attachments"][0]["filename"], "new_name.txt");
    let (status, _, bytes) = fetch(&t, m["attachments"][0]["url"].as_str().unwrap()).await;
    assert_eq!((status, bytes), (200, b"x".to_vec()));
}

/// A client that goes away in the middle of a file leaves nothing: no blob, no temporary file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_by_the_client_leaves_nothing() {
    use tokio::io::AsyncWriteExt;
    // These checks read the files backend's directory, whatever the run's backends.
    let t = TestNode::start_with(|c| c.blobs = BlobKind::Fs).await;
    let owner = t.register("attcut").await;
    let (_, ch) = t.guild(&owner, "Cut").await;
    let addr = t.node.as_ref().unwrap().addr;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v10/channels/{ch}/messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 20000000\r\n\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"cut.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n",
        owner.token
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&noise(300_000)).await.unwrap();
    sock.flush().await.unwrap();
    let root = t.config.data_dir.join("blobs");
    // The write has started (a temporary file exists) before the client leaves.
    eventually("the upload is being written", || {
        !files_under(&root).is_empty()
    })
    .await;
    drop(sock);
    eventually("nothing of the upload is left", || {
        files_under(&root).is_empty()
    })
    .await;
    let history = t
        .get(&format!("/channels/{ch}/messages"), &owner.token)
        .await
        .ok(200);
    assert_eq!(history, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_takes_files_from_its_users_only() {
    let t = TestNode::start().await;
    let ana = t.register("dmfileana").await;
    let ben = t.register("dmfileben").await;
    let cal = t.register("dmfilecal").await;
    let (_, ch) = t.guild(&ana, "Shared files").await;
    t.join(&ana, &ch, &ben).await;
    t.join(&ana, &ch, &cal).await;
    let dm = t
        .post(
            "/users/@me/channels",
            &ben.token,
            json!({"recipient_id": ana.id}),
        )
        .await
        .ok(200);
    let dm = id_of(&dm);

    let picture = png(4, 4, 1_000);
    let m = post_files(
        &t,
        &ben.token,
        &dm,
        Some(json!({"content": "the plan"})),
        vec![file("plan.png", picture.clone(), "image/png")],
    )
    .await
    .ok(200);
    assert!(m.get("guild_id").is_none(), "{m}");
    let url = m["attachments"][0]["url"].as_str().unwrap().to_owned();
    assert!(url.contains(&format!("/attachments/{dm}/")), "{url}");
    let (status, _, bytes) = fetch(&t, &url).await;
    assert_eq!((status, bytes), (200, picture.clone()));
    let read = t
        .get(&format!("/channels/{dm}/messages"), &ana.token)
        .await
        .ok(200);
    assert_eq!(read[0]["attachments"][0]["url"], url.as_str());

    // Someone outside the DM is refused before a byte is stored.
    post_files(
        &t,
        &cal.token,
        &dm,
        None,
        vec![file("intrude.png", picture, "image/png")],
    )
    .await
    .err(403, 50001);
}
