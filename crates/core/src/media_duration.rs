//! How long an audio or video file plays, read from its container headers, so a voice note
//! shows its length on the recipient's phone before it is played.
//!
//! Only two containers matter for WhatsApp: Ogg (Opus voice notes) and MP4/QuickTime (videos,
//! m4a audio). Both keep the duration in a few bytes at known places, so this reads those
//! bytes through `Read + Seek` and never the whole file. Hand-written rather than a crate:
//! the media crates (symphonia, mp4) decode or parse far more than one number, and pull in
//! dependencies, for what is about a hundred lines here. The reader is the caller's (usually
//! a `std::fs::File`); nothing here opens files.

use std::io::{Read, Seek, SeekFrom};

use crate::content::mime_essence;

/// How far from the end of an Ogg file the last page is looked for. An Ogg page is at most
/// 65,307 bytes, so the last page's header is always inside this window.
const OGG_TAIL: u64 = 64 * 1024;
/// Opus counts granules at 48 kHz whatever the input rate was (RFC 7845 §4).
const OPUS_RATE: u64 = 48_000;
/// A bound on the boxes walked, against files made of millions of tiny boxes.
const MAX_BOXES: usize = 4096;

/// The whole seconds `r` plays, rounded up (at least 1 when anything plays), or `None` when
/// `mime` is not an Ogg or MP4 type or the headers are missing, truncated or nonsense.
pub fn duration_secs<R: Read + Seek>(mime: &str, r: &mut R) -> Option<u32> {
    match mime_essence(mime).as_str() {
        "audio/ogg" | "audio/opus" | "video/ogg" | "application/ogg" => ogg_duration(r),
        "video/mp4" | "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "video/quicktime"
        | "video/x-m4v" | "video/3gpp" | "audio/3gpp" => mp4_duration(r),
        _ => None,
    }
}

/// `units` at `rate` per second, in whole seconds rounded up; `None` for nothing or never.
fn whole_seconds(units: u64, rate: u64) -> Option<u32> {
    if units == 0 || rate == 0 {
        return None;
    }
    u32::try_from(units.div_ceil(rate)).ok()
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_be(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the stream.
fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(n)
}

/// The fixed part of an Ogg page header: "OggS", version, type, granule, serial, sequence,
/// CRC, segment count.
const OGG_HEADER: usize = 27;

/// An Ogg page header at `at` in `b`: (granule, serial, payload start, payload end), when the
/// whole page is inside `b`.
fn ogg_page(b: &[u8], at: usize) -> Option<(i64, u32, usize, usize)> {
    let h = b.get(at..at + OGG_HEADER)?;
    if &h[..4] != b"OggS" || h[4] != 0 {
        return None;
    }
    let granule = i64::from_le_bytes(h[6..14].try_into().ok()?);
    let serial = u32_le(h, 14)?;
    let segments = usize::from(h[26]);
    let table = b.get(at + OGG_HEADER..at + OGG_HEADER + segments)?;
    let start = at + OGG_HEADER + segments;
    let end = start + table.iter().map(|&s| usize::from(s)).sum::<usize>();
    (end <= b.len()).then_some((granule, serial, start, end))
}

/// The last page's granule position (samples since the start) over the codec's rate, after
/// Opus's pre-skip (the decoder's warm-up, not played).
fn ogg_duration<R: Read + Seek>(r: &mut R) -> Option<u32> {
    let len = r.seek(SeekFrom::End(0)).ok()?;
    // The first page holds exactly the codec's identification header.
    r.seek(SeekFrom::Start(0)).ok()?;
    let mut head = vec![0u8; 512];
    let n = read_up_to(r, &mut head)?;
    head.truncate(n);
    let (_, serial, start, end) = ogg_page(&head, 0)?;
    let id = &head[start..end];
    let (rate, skip) = if id.starts_with(b"OpusHead") {
        (OPUS_RATE, u64::from(u16_le(id, 10)?))
    } else if id.starts_with(b"\x01vorbis") {
        (u64::from(u32_le(id, 12)?), 0)
    } else {
        return None;
    };

    let from = len.saturating_sub(OGG_TAIL);
    r.seek(SeekFrom::Start(from)).ok()?;
    let mut tail = vec![0u8; usize::try_from(len - from).ok()?];
    let n = read_up_to(r, &mut tail)?;
    tail.truncate(n);
    // The last whole page of this stream that ends a packet (-1: none ends on that page).
    let granule = (0..tail.len().saturating_sub(3))
        .rev()
        .filter(|&i| &tail[i..i + 4] == b"OggS")
        .filter_map(|i| ogg_page(&tail, i))
        .find(|&(g, s, ..)| s == serial && g >= 0)
        .map(|(g, ..)| g as u64)?;
    whole_seconds(granule.saturating_sub(skip), rate)
}

/// A box header at `at`: (type, content start, box end), when the box ends by `len` (the
/// end of the file or of the parent box); size 0 means "to `len`".
fn mp4_box<R: Read + Seek>(r: &mut R, at: u64, len: u64) -> Option<([u8; 4], u64, u64)> {
    r.seek(SeekFrom::Start(at)).ok()?;
    let mut h = [0u8; 16];
    let n = read_up_to(r, &mut h)?;
    if n < 8 {
        return None;
    }
    let kind: [u8; 4] = h[4..8].try_into().ok()?;
    let (size, header) = match u32_be(&h, 0)? {
        0 => (len - at, 8),
        1 if n >= 16 => (u64_be(&h, 8)?, 16),
        1 => return None,
        s => (u64::from(s), 8),
    };
    if size < header {
        return None;
    }
    // A box running past its parent is a cut-short file: its numbers cannot be trusted.
    let end = at.checked_add(size).filter(|&e| e <= len)?;
    Some((kind, at + header, end))
}

/// `moov/mvhd`'s duration over its timescale. The top-level boxes are skipped by their sizes,
/// as `moov` often comes after the media data.
fn mp4_duration<R: Read + Seek>(r: &mut R) -> Option<u32> {
    let len = r.seek(SeekFrom::End(0)).ok()?;
    let (mut at, mut limit) = (0, len);
    let mut in_moov = false;
    for _ in 0..MAX_BOXES {
        if at >= limit {
            return None;
        }
        let (kind, start, end) = mp4_box(r, at, limit)?;
        match (&kind, in_moov) {
            (b"moov", false) => {
                (at, limit, in_moov) = (start, end, true);
                continue;
            }
            (b"mvhd", true) => {
                r.seek(SeekFrom::Start(start)).ok()?;
                let mut b = [0u8; 32];
                let n = read_up_to(r, &mut b)?;
                // Only the box's own bytes: a short `mvhd` must not borrow its sibling's.
                let b = &b[..n.min(usize::try_from(end - start).unwrap_or(usize::MAX))];
                // Version, flags, creation and modification times, timescale, duration.
                let (scale, duration) = match b.first()? {
                    0 => (u32_be(b, 12)?, u64::from(u32_be(b, 16)?)),
                    1 => (u32_be(b, 20)?, u64_be(b, 24)?),
                    _ => return None,
                };
                // All ones: the duration is unknown (a fragmented or live file).
                if (b[0] == 0 && duration == u64::from(u32::MAX)) || duration == u64::MAX {
                    return None;
                }
                return whole_seconds(duration, u64::from(scale));
            }
            _ => at = end,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::io::Cursor;

    fn ogg_page_bytes(kind: u8, granule: i64, serial: u32, seq: u32, packet: &[u8]) -> Vec<u8> {
        let mut p = b"OggS".to_vec();
        p.push(0);
        p.push(kind);
        p.extend_from_slice(&granule.to_le_bytes());
        p.extend_from_slice(&serial.to_le_bytes());
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&[0; 4]); // CRC: not checked here
        let mut lacing = vec![255u8; packet.len() / 255];
        lacing.push((packet.len() % 255) as u8);
        p.push(lacing.len() as u8);
        p.extend_from_slice(&lacing);
        p.extend_from_slice(packet);
        p
    }

    fn opus_head(pre_skip: u16) -> Vec<u8> {
        let mut h = b"OpusHead".to_vec();
        h.extend_from_slice(&[1, 1]);
        h.extend_from_slice(&pre_skip.to_le_bytes());
        h.extend_from_slice(&48_000u32.to_le_bytes());
        h.extend_from_slice(&[0, 0, 0]);
        h
    }

    /// An Ogg Opus file whose last page has `granule`, with `audio` bytes of "packets".
    fn ogg_opus(pre_skip: u16, granule: i64, audio: usize) -> Vec<u8> {
        let serial = 0x1234_5678;
        let mut f = ogg_page_bytes(2, 0, serial, 0, &opus_head(pre_skip));
        f.extend(ogg_page_bytes(0, 0, serial, 1, b"OpusTags\0\0\0\0\0\0\0\0"));
        let mut seq = 2;
        let mut left = audio;
        while left > 0 {
            let n = left.min(4000);
            left -= n;
            let (kind, g) = if left == 0 { (4, granule) } else { (0, granule / 2) };
            f.extend(ogg_page_bytes(kind, g, serial, seq, &vec![0x4f; n]));
            seq += 1;
        }
        f
    }

    fn ogg_secs(bytes: Vec<u8>) -> Option<u32> {
        duration_secs("audio/ogg; codecs=opus", &mut Cursor::new(bytes))
    }

    #[test]
    fn an_ogg_opus_plays_its_last_granule_less_the_pre_skip_at_48_khz() {
        // 7.2 s of audio after a 312-sample pre-skip: 8 s rounded up.
        assert_eq!(ogg_secs(ogg_opus(312, 312 + 345_600, 3000)), Some(8));
        // Exactly 5 s stays 5.
        assert_eq!(ogg_secs(ogg_opus(312, 312 + 240_000, 3000)), Some(5));
        // A tenth of a second is still a second.
        assert_eq!(ogg_secs(ogg_opus(312, 312 + 4_800, 100)), Some(1));
        // The pre-skip is not played.
        assert_eq!(ogg_secs(ogg_opus(48_000, 48_000 + 48_000, 100)), Some(1));
    }

    #[test]
    fn the_last_page_is_found_past_the_first_64_kib() {
        // A 2-minute note of ~200 KiB: only its tail is searched.
        assert_eq!(ogg_secs(ogg_opus(312, 312 + 120 * 48_000, 200_000)), Some(120));
    }

    #[test]
    fn an_ogg_with_nothing_played_or_no_known_codec_has_no_duration() {
        assert_eq!(ogg_secs(ogg_opus(312, 312, 100)), None);
        assert_eq!(ogg_secs(ogg_opus(312, 0, 100)), None);
        let mut speex = ogg_page_bytes(2, 0, 7, 0, b"Speex   1.2");
        speex.extend(ogg_page_bytes(4, 96_000, 7, 1, &[0; 50]));
        assert_eq!(ogg_secs(speex), None);
    }

    #[test]
    fn an_ogg_vorbis_counts_at_its_own_rate() {
        let mut id = b"\x01vorbis".to_vec();
        id.extend_from_slice(&0u32.to_le_bytes());
        id.push(2);
        id.extend_from_slice(&44_100u32.to_le_bytes());
        id.extend_from_slice(&[0; 14]);
        let mut f = ogg_page_bytes(2, 0, 9, 0, &id);
        f.extend(ogg_page_bytes(4, 44_100 * 3 + 1, 9, 1, &[0; 500]));
        assert_eq!(ogg_secs(f), Some(4));
    }

    #[test]
    fn a_truncated_last_page_falls_back_to_the_page_before() {
        let mut f = ogg_opus(0, 48_000 * 6, 9000);
        f.truncate(f.len() - 10);
        // The page before the cut-off one carries half the granule.
        assert_eq!(ogg_secs(f), Some(3));
    }

    #[test]
    fn pages_of_another_stream_are_not_counted() {
        let mut f = ogg_opus(0, 48_000 * 2, 100);
        f.extend(ogg_page_bytes(4, 48_000 * 60, 0xdead, 0, &[0; 20]));
        assert_eq!(ogg_secs(f), Some(2));
    }

    fn mp4_box_bytes(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    fn mvhd_v0(scale: u32, duration: u32) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0];
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&scale.to_be_bytes());
        b.extend_from_slice(&duration.to_be_bytes());
        b.extend_from_slice(&[0; 80]);
        mp4_box_bytes(b"mvhd", &b)
    }

    fn mvhd_v1(scale: u32, duration: u64) -> Vec<u8> {
        let mut b = vec![1, 0, 0, 0];
        b.extend_from_slice(&1u64.to_be_bytes());
        b.extend_from_slice(&2u64.to_be_bytes());
        b.extend_from_slice(&scale.to_be_bytes());
        b.extend_from_slice(&duration.to_be_bytes());
        b.extend_from_slice(&[0; 80]);
        mp4_box_bytes(b"mvhd", &b)
    }

    /// ftyp, a large mdat, then moov (with a track box before mvhd) at the end.
    fn mp4(mvhd: Vec<u8>) -> Vec<u8> {
        let mut f = mp4_box_bytes(b"ftyp", b"isom\0\0\x02\0isomiso2mp41");
        f.extend(mp4_box_bytes(b"free", b""));
        f.extend(mp4_box_bytes(b"mdat", &vec![0x55; 100_000]));
        let mut moov = mp4_box_bytes(b"udta", &[0; 12]);
        moov.extend(mvhd);
        moov.extend(mp4_box_bytes(b"trak", &[0; 40]));
        f.extend(mp4_box_bytes(b"moov", &moov));
        f
    }

    fn mp4_secs(mime: &str, bytes: Vec<u8>) -> Option<u32> {
        duration_secs(mime, &mut Cursor::new(bytes))
    }

    #[test]
    fn an_mp4_plays_its_movie_header_duration_over_its_timescale() {
        assert_eq!(mp4_secs("video/mp4", mp4(mvhd_v0(1000, 7_200))), Some(8));
        assert_eq!(mp4_secs("audio/mp4", mp4(mvhd_v0(44_100, 44_100 * 30))), Some(30));
        assert_eq!(mp4_secs("video/quicktime", mp4(mvhd_v1(90_000, 90_000 * 61 + 1))), Some(62));
        assert_eq!(mp4_secs("audio/x-m4a", mp4(mvhd_v1(600, 1))), Some(1));
    }

    #[test]
    fn an_mp4_with_a_64_bit_mdat_or_a_moov_to_the_end_of_the_file_is_read() {
        let mut f = mp4_box_bytes(b"ftyp", b"isom\0\0\x02\0");
        let mdat = vec![0u8; 5000];
        f.extend_from_slice(&1u32.to_be_bytes());
        f.extend_from_slice(b"mdat");
        f.extend_from_slice(&(mdat.len() as u64 + 16).to_be_bytes());
        f.extend(mdat);
        // size 0: moov runs to the end of the file.
        f.extend_from_slice(&0u32.to_be_bytes());
        f.extend_from_slice(b"moov");
        f.extend(mvhd_v0(1000, 2_500));
        assert_eq!(mp4_secs("video/mp4", f), Some(3));
    }

    #[test]
    fn an_mp4_without_a_known_duration_has_none() {
        assert_eq!(mp4_secs("video/mp4", mp4(mvhd_v0(0, 1000))), None);
        assert_eq!(mp4_secs("video/mp4", mp4(mvhd_v0(1000, 0))), None);
        assert_eq!(mp4_secs("video/mp4", mp4(mvhd_v0(1000, u32::MAX))), None);
        assert_eq!(mp4_secs("video/mp4", mp4(mvhd_v1(1000, u64::MAX))), None);
        // More seconds than a u32 holds.
        assert_eq!(mp4_secs("video/mp4", mp4(mvhd_v1(1, u64::MAX - 1))), None);
        // No moov at all (a fragmented file cut short), or a moov cut in half.
        let mut f = mp4(mvhd_v0(1000, 1000));
        assert_eq!(mp4_secs("video/mp4", f[..100_050].to_vec()), None);
        f.truncate(f.len() - 60);
        assert_eq!(mp4_secs("video/mp4", f), None);
        // An mvhd too short for its fields, followed by bytes that would look like them.
        let mut short = mp4_box_bytes(b"mvhd", &[0; 8]);
        // (Read through, "trak" would be the timescale and these four bytes the duration.)
        short.extend(mp4_box_bytes(b"trak", &[0xff, 0xff, 0xff, 0xf0]));
        let mut f = mp4_box_bytes(b"ftyp", b"isom");
        f.extend(mp4_box_bytes(b"moov", &short));
        assert_eq!(mp4_secs("video/mp4", f), None);
        // A box claiming less than its own header.
        let mut bad = 4u32.to_be_bytes().to_vec();
        bad.extend_from_slice(b"ftypisom");
        assert_eq!(mp4_secs("video/mp4", bad), None);
    }

    #[test]
    fn other_types_and_mismatched_contents_have_no_duration() {
        let ogg = ogg_opus(0, 48_000, 100);
        assert_eq!(mp4_secs("audio/mpeg", ogg.clone()), None);
        assert_eq!(mp4_secs("image/jpeg", mp4(mvhd_v0(1, 1))), None);
        assert_eq!(mp4_secs("video/mp4", ogg), None);
        assert_eq!(ogg_secs(mp4(mvhd_v0(1, 1))), None);
        assert_eq!(ogg_secs(vec![]), None);
        assert_eq!(mp4_secs("video/mp4", vec![]), None);
    }

    #[test]
    fn random_and_mangled_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let good = [ogg_opus(312, 312 + 96_000, 5000), mp4(mvhd_v1(1000, 5000))];
        for round in 0..3000 {
            let bytes: Vec<u8> = match round % 3 {
                0 => (0..rng.gen_range(0..600)).map(|_| rng.gen()).collect(),
                _ => {
                    // A real file with a few bytes flipped and maybe cut short.
                    let mut b = good[round % 2].clone();
                    for _ in 0..rng.gen_range(1..8) {
                        let i = rng.gen_range(0..b.len());
                        b[i] = rng.gen();
                    }
                    let keep = rng.gen_range(0..=b.len());
                    b.truncate(keep);
                    b
                }
            };
            for mime in ["audio/ogg", "video/mp4"] {
                let _ = duration_secs(mime, &mut Cursor::new(bytes.clone()));
            }
        }
    }
}
