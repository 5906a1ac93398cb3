//! Renders a QR payload as a PNG. Written over `qrcode`'s module matrix and the `png` encoder
//! rather than `qrcode`'s `image` feature, which would pull the whole `image` crate in.

use qrcode::{Color, QrCode};

/// Pixels per QR module, and the quiet zone around the code in modules.
const SCALE: usize = 8;
const QUIET: usize = 4;

pub fn render_png(payload: &str) -> Result<Vec<u8>, String> {
    let code = QrCode::new(payload.as_bytes()).map_err(|e| e.to_string())?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(&pixels).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_decodable_png_of_the_right_size() {
        let png_bytes = render_png("2@abc,def,ghi,jkl").unwrap();
        assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width as usize % SCALE, 0);
        // A version-1 code is 21 modules wide; ours is at least that plus the quiet zone.
        assert!(info.width as usize >= (21 + 2 * QUIET) * SCALE);
    }
}
