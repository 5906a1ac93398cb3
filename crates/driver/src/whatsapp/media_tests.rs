//! The media handle's JSON, the error mapping of downloads, and the re-encrypting upload
//! source against the library's own in-memory encryption.

use super::*;
use whatsapp_rust::wacore::upload::encrypt_media_with_key;
use whatsapp_rust::waproto::whatsapp as wa;

#[test]
fn a_handle_round_trips_through_json_with_base64_bytes() {
    let image = wa::message::ImageMessage {
        url: Some("https://mmg.whatsapp.net/o1/v/t62/abc".into()),
        direct_path: Some("/o1/v/t62/abc".into()),
        media_key: Some(vec![1; 32]),
        file_enc_sha256: Some(vec![2; 32]),
        file_sha256: Some(vec![3; 32]),
        file_length: Some(48213),
        ..Default::default()
    };
    let handle = MediaHandle::of(MediaKind::Image, &image, image.url.as_deref());
    let json = handle.to_value();
    assert_eq!(json["media_type"], "image");
    assert_eq!(json["direct_path"], "/o1/v/t62/abc");
    assert_eq!(json["url"], "https://mmg.whatsapp.net/o1/v/t62/abc");
    assert_eq!(json["media_key"], B64.encode([1u8; 32]));
    assert_eq!(json["file_length"], 48213);
    assert!(json.get("static_url").is_none(), "absent fields are left out: {json}");

    let back = MediaHandle::from_value(&json).unwrap();
    assert_eq!(back, handle);
    // What the library downloads from is what the message said.
    assert_eq!(back.direct_path(), image.direct_path());
    assert_eq!(back.media_key(), image.media_key());
    assert_eq!(back.file_enc_sha256(), image.file_enc_sha256());
    assert_eq!(back.file_sha256(), image.file_sha256());
    assert_eq!(back.file_length(), Some(48213));
    assert_eq!(back.app_info(), MediaType::Image);
}

#[test]
fn a_static_url_is_fetched_only_from_whatsapps_media_hosts() {
    for ok in [
        "https://mmg.whatsapp.net/m1/v/t24/abc?ccb=1",
        "https://static.whatsapp.net/x",
        "https://scontent.xx.fbcdn.net/v/t39/abc",
        "https://WhatsApp.NET./x",
    ] {
        assert!(is_whatsapp_media_url(ok), "{ok}");
    }
    for bad in [
        "http://mmg.whatsapp.net/x",
        "https://127.0.0.1/secret",
        "https://2130706433/secret",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/x",
        "https://localhost/x",
        "https://evilwhatsapp.net/x",
        "https://whatsapp.net.evil.com/x",
        "https://mmg.whatsapp.net:8080/x",
        "https://user@mmg.whatsapp.net/x",
        "file:///etc/passwd",
        "not a url",
    ] {
        assert!(!is_whatsapp_media_url(bad), "{bad}");
    }
    let with = |u: &str| {
        let h = serde_json::json!({"media_type": "image", "direct_path": "/v/t62/abc", "static_url": u});
        MediaHandle::from_value(&h).unwrap().trusted()
    };
    assert_eq!(with("http://127.0.0.1:8080/secret").static_url, None);
    assert_eq!(with("http://127.0.0.1:8080/secret").direct_path.as_deref(), Some("/v/t62/abc"));
    assert_eq!(
        with("https://mmg.whatsapp.net/m1/abc").static_url.as_deref(),
        Some("https://mmg.whatsapp.net/m1/abc")
    );
}

#[test]
fn a_foreign_handle_is_refused() {
    for bad in [
        serde_json::json!({"id": "sim-1"}),
        serde_json::json!({"media_type": "image", "media_key": "not base64!"}),
    ] {
        assert!(matches!(MediaHandle::from_value(&bad), Err(DriverError::Rejected { .. })));
    }
}

#[test]
fn every_kind_downloads_with_its_own_keys() {
    let image = MediaHandle::from_value(&serde_json::json!({"media_type": "image"})).unwrap();
    for kind in MediaKind::ALL {
        let h = MediaHandle { media_type: kind, ..image.clone() };
        assert_eq!(h.app_info(), media_type(kind));
    }
    assert_eq!(media_type(MediaKind::Sticker), MediaType::Sticker);
    assert_eq!(media_type(MediaKind::Audio), MediaType::Audio);
}

#[test]
fn the_origin_of_a_file_survives_the_round_trip() {
    let mut h = MediaHandle::from_value(&serde_json::json!({"media_type": "audio"})).unwrap();
    h.message = Some(MediaOrigin {
        id: "3EB0AAA".into(),
        chat: "120363000000000001@g.us".into(),
        from_me: false,
        participant: Some("777@lid".into()),
    });
    let json = h.to_value();
    assert_eq!(json["message"]["participant"], "777@lid");
    assert_eq!(MediaHandle::from_value(&json).unwrap(), h);
}

#[test]
fn an_expired_file_is_not_found_and_other_failures_are_the_networks() {
    use whatsapp_rust::anyhow;
    use whatsapp_rust::http::HttpStatusError;
    for status in [404, 410, 403] {
        let e = anyhow::Error::new(HttpStatusError { status }).context("download failed");
        let DriverError::NotFound(why) = download_error(&e) else { panic!("{status}") };
        assert!(why.contains(&status.to_string()), "{why}");
    }
    let e = anyhow::Error::new(HttpStatusError { status: 503 }).context("download failed");
    assert!(matches!(download_error(&e), DriverError::Transport(_)));
    let e = anyhow::anyhow!("connection reset");
    assert!(matches!(download_error(&e), DriverError::Transport(m) if m.contains("reset")));
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(name: &str, data: &[u8]) -> TempFile {
    let path = std::env::temp_dir().join(format!(
        "bzapper-media-{}-{name}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::write(&path, data).unwrap();
    TempFile(path)
}

#[test]
fn the_encrypting_reader_yields_the_librarys_ciphertext_from_any_offset() {
    // Not a multiple of the block size nor of the read chunk.
    let data: Vec<u8> = (0..(CHUNK * 2 + 1234)).map(|i| (i * 7 % 251) as u8).collect();
    let file = temp_file("enc", &data);
    let key = [7u8; 32];
    let expected = encrypt_media_with_key(&data, MediaType::Video, Some(&key)).unwrap();

    // The first pass the upload makes gives the same hashes as the in-memory encryption.
    let info = encrypt_media_streaming_with_key(
        File::open(&file.0).unwrap(),
        io::sink(),
        MediaType::Video,
        Some(&key),
        None,
    )
    .unwrap();
    assert_eq!(info.file_enc_sha256, expected.file_enc_sha256);
    assert_eq!(info.file_sha256, expected.file_sha256);
    assert_eq!(info.streaming_sidecar, expected.streaming_sidecar);

    let source = EncryptingFile {
        path: file.0.clone(),
        media_key: key,
        media_type: MediaType::Video,
        len: encrypted_len(data.len()) as u64,
    };
    assert_eq!(UploadSource::len(&source), expected.data_to_upload.len() as u64);
    let total = expected.data_to_upload.len();
    for offset in [0, 1, 17, CHUNK + 5, total - 10, total] {
        let mut got = Vec::new();
        source.reader_from(offset as u64).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, expected.data_to_upload[offset..], "from offset {offset}");
    }
    // Small reads see the same bytes.
    let mut reader = source.reader_from(3).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, expected.data_to_upload[3..]);
}

#[test]
fn an_empty_file_encrypts_to_one_padding_block_and_the_mac() {
    let file = temp_file("empty", b"");
    let key = [9u8; 32];
    let expected = encrypt_media_with_key(b"", MediaType::Document, Some(&key)).unwrap();
    let source = EncryptingFile {
        path: file.0.clone(),
        media_key: key,
        media_type: MediaType::Document,
        len: encrypted_len(0) as u64,
    };
    let mut got = Vec::new();
    source.reader_from(0).unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(got, expected.data_to_upload);
    assert_eq!(got.len() as u64, UploadSource::len(&source));
}
