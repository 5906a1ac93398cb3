//! Plain-text tables for the terminal: a header row and columns padded to their widest cell
//! (counted in characters), two spaces apart, the last column unpadded.

/// The table as text, one line per row, each ending in `\n`.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let t = super::render(
            &["ID", "NAME", "STATUS"],
            &[
                vec!["a".into(), "ação".into(), "connected".into()],
                vec!["bbbbb".into(), "x".into(), "-".into()],
            ],
        );
        assert_eq!(t, "ID     NAME  STATUS\na      ação  connected\nbbbbb  x     -\n");
    }
}
