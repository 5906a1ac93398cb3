//! A campaign's recipients from a CSV text: one column is the phone number, every other
//! column a field the template can use. Shared by `bzapper campaign run` and the server's
//! CSV upload, so both read a file the same way and name a bad row the same way.

use csv::{ReaderBuilder, StringRecord, Trim};

/// One data row: the phone number as written (trimmed) and the other columns, in the file's
/// order, by header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecipient {
    /// The line the row starts on (1-based), for messages about it.
    pub line: u64,
    pub to: String,
    pub fields: Vec<(String, String)>,
}

/// Why a CSV text gives no recipients. Every variant names the line where it applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("the file is empty")]
    Empty,
    #[error("line {line}: {message}")]
    Unreadable { line: u64, message: String },
    #[error("line {line}: no column `{column}` in the header ({header})")]
    NoSuchColumn { line: u64, column: String, header: String },
    #[error(
        "line {line}: no `phone` or `to` column in the header ({header}); name the phone column \
         with --phone-column"
    )]
    NoPhoneColumn { line: u64, header: String },
    #[error(
        "line {line}: {found} columns, but the header has {expected} (quote a value that holds \
         a comma: \"a, b\")"
    )]
    ColumnCount { line: u64, found: usize, expected: usize },
    #[error("line {line}: no phone number in column `{column}`")]
    NoPhone { line: u64, column: String },
    #[error(
        "line {line}: the phone number in column `{column}` runs over several lines (a quote \
         left open?)"
    )]
    PhoneSpansLines { line: u64, column: String },
    #[error("line {line} is the header and no row follows it")]
    NoRows { line: u64 },
}

/// The recipients of `text` (RFC 4180 through the `csv` crate: quoted commas and line breaks,
/// `""` for a quote, CRLF or LF, a UTF-8 byte order mark, blank lines skipped). The phone
/// column is `phone_column` (matched without regard to case), else `phone`, else `to`.
pub fn recipients(text: &str, phone_column: Option<&str>) -> Result<Vec<CsvRecipient>, CsvError> {
    // `flexible`: a row of the wrong width is reported with our own message (which says how
    // to quote a comma) rather than the crate's.
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(Trim::None)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let (header_line, header) = match records.next() {
        None => return Err(CsvError::Empty),
        Some(r) => {
            let r = r.map_err(unreadable)?;
            (line_of(text, &r), r.iter().map(|h| h.trim().to_string()).collect::<Vec<_>>())
        }
    };
    let joined = || header.join(",");
    let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let phone = match phone_column {
        Some(c) => find(c).ok_or_else(|| CsvError::NoSuchColumn {
            line: header_line,
            column: c.to_string(),
            header: joined(),
        })?,
        None => find("phone")
            .or_else(|| find("to"))
            .ok_or_else(|| CsvError::NoPhoneColumn { line: header_line, header: joined() })?,
    };
    let mut out = Vec::new();
    for record in records {
        let record = record.map_err(unreadable)?;
        let line = line_of(text, &record);
        if record.len() != header.len() {
            return Err(CsvError::ColumnCount {
                line,
                found: record.len(),
                expected: header.len(),
            });
        }
        let to = record[phone].trim();
        if to.is_empty() {
            return Err(CsvError::NoPhone { line, column: header[phone].clone() });
        }
        // The crate reads a quote left open as a value running to the end of the file; in
        // the phone column that is never what was meant.
        if to.contains(['\n', '\r']) {
            return Err(CsvError::PhoneSpansLines { line, column: header[phone].clone() });
        }
        let fields = record
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != phone && !header[*i].is_empty())
            .map(|(i, value)| (header[i].clone(), value.to_string()))
            .collect();
        out.push(CsvRecipient { line, to: to.to_string(), fields });
    }
    if out.is_empty() {
        return Err(CsvError::NoRows { line: header_line });
    }
    Ok(out)
}

/// The line a record starts on. Counted here from the record's byte offset because the
/// crate's own line count lags by one after a CRLF line end; a record never starts with a
/// line break (blank lines are skipped), so any at the offset belong to the line before.
fn line_of(text: &str, r: &StringRecord) -> u64 {
    let Some(at) = r.position().map(|p| p.byte() as usize) else { return 0 };
    let before = text.as_bytes().get(..at).unwrap_or(text.as_bytes());
    let rest = text.as_bytes().get(at..).unwrap_or_default();
    let breaks_at_start =
        rest.iter().take_while(|b| matches!(b, b'\r' | b'\n')).filter(|b| **b == b'\n').count();
    1 + (before.iter().filter(|b| **b == b'\n').count() + breaks_at_start) as u64
}

fn unreadable(e: csv::Error) -> CsvError {
    let line = e.position().map_or(0, |p| p.line());
    // The input is already UTF-8 text and rows may differ in width (`flexible`), so the
    // crate has little left to refuse; whatever it does is passed on with its line.
    CsvError::Unreadable { line, message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn quoted_values_bom_crlf_and_blank_lines_are_read_as_rfc_4180_says() {
        let text =
            "\u{feff}phone,name,note\r\n+1 555 0100,\"Silva, Ana\",\"say \"\"hi\"\"\"\r\n\r\n\
             +1 555 0101,Bo,\"two\nlines\"\n+1 555 0102,,\"\"";
        let got = recipients(text, None).unwrap();
        assert_eq!(
            got,
            vec![
                CsvRecipient {
                    line: 2,
                    to: "+1 555 0100".into(),
                    fields: fields(&[("name", "Silva, Ana"), ("note", "say \"hi\"")]),
                },
                CsvRecipient {
                    line: 4,
                    to: "+1 555 0101".into(),
                    fields: fields(&[("name", "Bo"), ("note", "two\nlines")]),
                },
                CsvRecipient {
                    line: 6,
                    to: "+1 555 0102".into(),
                    fields: fields(&[("name", ""), ("note", "")]),
                },
            ]
        );
    }

    #[test]
    fn the_phone_column_is_found_by_name_and_the_rest_are_fields() {
        let v = recipients("name,TO,code\nAna,+5511988887777,7\n", None).unwrap();
        assert_eq!(v[0].to, "+5511988887777");
        assert_eq!(v[0].fields, fields(&[("name", "Ana"), ("code", "7")]));
        let v = recipients("tel,name\n123456789,Bo\n", Some("TEL")).unwrap();
        assert_eq!(v[0].to, "123456789");
        // A column without a header name is not a field.
        let v = recipients("phone,\n123456789,x\n", None).unwrap();
        assert!(v[0].fields.is_empty());
    }

    #[test]
    fn bad_files_name_the_line_and_what_is_wrong() {
        let e = |text: &str, col: Option<&str>| recipients(text, col).unwrap_err().to_string();
        assert!(e("phone,name\n1234567890,Ana\n1234567891,Bo,extra\n", None)
            .starts_with("line 3: 3 columns, but the header has 2"),);
        assert!(e("name\nAna\n", None).contains("no `phone` or `to` column"));
        assert_eq!(e("name\nAna\n", Some("tel")), "line 1: no column `tel` in the header (name)");
        assert_eq!(e("phone,name\n", None), "line 1 is the header and no row follows it");
        assert_eq!(e("", None), "the file is empty");
        assert!(e("phone,name\n ,Ana\n", None).starts_with("line 2: no phone number"));
        // A quote left open swallows the rest of the file into one value.
        assert_eq!(
            e("a,phone\n1,\"open\n2,3\n", None),
            "line 2: the phone number in column `phone` runs over several lines (a quote left \
             open?)"
        );
    }
}
