//! Draws a QR payload in a terminal with Unicode half blocks (`▀ ▄ █`): two module rows per
//! line of text, so a WhatsApp code (57 modules) fits in about 31 lines.

use qrcode::{Color, QrCode};

/// The quiet zone around the code, in modules. The standard asks for 4; 2 scans fine from a
/// screen and saves terminal lines.
pub const QUIET: usize = 2;

/// Which modules get ink (a drawn block); the others are left blank and show the background.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ink {
    /// Blocks for the dark modules: right on a light background.
    Dark,
    /// Blocks for the light modules: right on a dark background (light text).
    Light,
}

/// The lines of text that draw `payload` as a QR code, quiet zone included; every line has the
/// same number of characters.
pub fn render(payload: &str, ink: Ink) -> Result<Vec<String>, String> {
    let code = QrCode::new(payload.as_bytes()).map_err(|e| e.to_string())?;
    let width = code.width();
    let colors = code.to_colors();
    let side = width + 2 * QUIET;
    // Whether the module at (x, y) of the padded square gets ink.
    let inked = |x: usize, y: usize| {
        let color = if (QUIET..QUIET + width).contains(&x) && (QUIET..QUIET + width).contains(&y) {
            colors[(y - QUIET) * width + (x - QUIET)]
        } else {
            Color::Light
        };
        match ink {
            Ink::Dark => color == Color::Dark,
            Ink::Light => color == Color::Light,
        }
    };
    let mut lines = Vec::with_capacity(side.div_ceil(2));
    for y in (0..side).step_by(2) {
        let line = (0..side)
            .map(|x| {
                // An odd side leaves the last line with a top half only: the half below it
                // is more quiet zone, a light module (ink only when the ink is light).
                let bottom = if y + 1 < side { inked(x, y + 1) } else { ink == Ink::Light };
                match (inked(x, y), bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                }
            })
            .collect();
        lines.push(line);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the drawing back into module colours (true = dark), quiet zone included.
    fn read_back(lines: &[String], ink: Ink) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in lines {
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (t, b) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected {other:?}"),
                };
                top.push(t == (ink == Ink::Dark));
                bottom.push(b == (ink == Ink::Dark));
            }
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    #[test]
    fn a_version_1_code_takes_13_lines_of_25_columns() {
        // "hello" fits a version-1 code: 21 modules, plus 2 of quiet zone each side = 25.
        for ink in [Ink::Dark, Ink::Light] {
            let lines = render("hello", ink).unwrap();
            assert_eq!(lines.len(), 13);
            assert!(lines.iter().all(|l| l.chars().count() == 25), "{lines:?}");
        }
    }

    #[test]
    fn a_whatsapp_sized_payload_is_drawn_module_for_module() {
        let payload = format!(
            "2@{},{},{},{}",
            "A".repeat(88),
            "B".repeat(44),
            "C".repeat(44),
            "D".repeat(44)
        );
        let code = QrCode::new(payload.as_bytes()).unwrap();
        let width = code.width();
        let side = width + 2 * QUIET;
        for ink in [Ink::Dark, Ink::Light] {
            let lines = render(&payload, ink).unwrap();
            assert_eq!(lines.len(), side.div_ceil(2));
            let modules = read_back(&lines, ink);
            let colors = code.to_colors();
            for (y, row) in modules.iter().enumerate().take(side) {
                assert_eq!(row.len(), side);
                for (x, dark) in row.iter().enumerate() {
                    let inside =
                        (QUIET..QUIET + width).contains(&x) && (QUIET..QUIET + width).contains(&y);
                    let want = inside && colors[(y - QUIET) * width + (x - QUIET)] == Color::Dark;
                    assert_eq!(*dark, want, "module ({x}, {y}) with {ink:?} ink");
                }
            }
        }
    }

    #[test]
    fn the_quiet_zone_is_blank_with_dark_ink_and_solid_with_light_ink() {
        let dark = render("hello", Ink::Dark).unwrap();
        assert_eq!(dark[0], " ".repeat(25));
        let light = render("hello", Ink::Light).unwrap();
        assert_eq!(light[0], "█".repeat(25));
        assert_eq!(light.last().unwrap(), &"█".repeat(25));
    }
}
