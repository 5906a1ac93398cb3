//! Media files and a vCard the rich-messaging tests send: small, with the first bytes each
//! type is sniffed by. Shared by the simulated-network API tests (`rich.rs`) and the real
//! driver's wire tests (`crates/cli/tests/wire_rich.rs` includes this file by path).
#![allow(dead_code)]

use sha2::{Digest, Sha256};

pub const VCARD: &str =
    "BEGIN:VCARD\nVERSION:3.0\nFN:Ana Souza\nTEL;type=CELL:+5511988887777\nEND:VCARD";

/// A 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A PDF-looking file of `size` bytes.
pub fn pdf(size: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n".to_vec();
    v.extend((0..size - v.len()).map(|i| (i % 251) as u8));
    v
}

/// One Ogg page of a single packet (CRC left zero: nothing here checks it).
pub fn ogg_page(kind: u8, granule: u64, seq: u32, packet: &[u8]) -> Vec<u8> {
    let mut p = b"OggS\x00".to_vec();
    p.push(kind);
    p.extend_from_slice(&granule.to_le_bytes());
    p.extend_from_slice(&0x0b2a_u32.to_le_bytes());
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&[0; 4]);
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    p.push(lacing.len() as u8);
    p.extend_from_slice(&lacing);
    p.extend_from_slice(packet);
    p
}

/// An Ogg/Opus voice note of 7.2 s (8 s rounded up): OpusHead with a 312-sample pre-skip,
/// OpusTags, then two pages of "audio" whose last granule is 312 + 7.2 × 48,000.
pub fn ogg() -> Vec<u8> {
    let mut head = b"OpusHead\x01\x01".to_vec();
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    let mut v = ogg_page(2, 0, 0, &head);
    v.extend(ogg_page(0, 0, 1, b"OpusTags\0\0\0\0\0\0\0\0"));
    v.extend(ogg_page(0, 312 + 172_800, 2, &[7u8; 2000]));
    v.extend(ogg_page(4, 312 + 345_600, 3, &[7u8; 2000]));
    v
}

/// A WebP-looking sticker.
pub fn webp() -> Vec<u8> {
    let mut v = b"RIFF\x24\x00\x00\x00WEBPVP8 ".to_vec();
    v.extend(std::iter::repeat_n(3u8, 2000));
    v
}

/// An MP4-looking video.
pub fn mp4() -> Vec<u8> {
    let mut v = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    v.extend(std::iter::repeat_n(5u8, 50_000));
    v
}
