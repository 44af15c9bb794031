//! Hashing by streaming: a PostgreSQL side sends a segment's rows as binary
//! `COPY … TO STDOUT`, and this module turns each value into the same canonical
//! text, and each row into the same 60-bit hash, as the SQL of
//! [`crate::canonical`] computes inside the database. The two are
//! interchangeable bucket by bucket (a test holds them to it for every
//! category), so one side may stream while the other (Oracle) hashes in SQL.
//!
//! Why: measured on this machine, PostgreSQL spends most of an in-database
//! hash in `md5()` and text building; sending the binary values costs the
//! server about a third of that, and Rust hashes faster than it can send.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

use crate::canonical::{Category, EmptyText};
use crate::ValidatorError;

/// How a column travels in the COPY and what Rust makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `int8`: the decimal.
    Int,
    /// `numeric`: the decimal without trailing zeros (`trim_scale`).
    Numeric,
    /// `float8`: IEEE bits in hex, `-0.0` as `0`, NaN as `NaN`.
    Float,
    /// `text`: `<chars>:<text>` (a pair where `''` is NULL sends it as NULL).
    Text,
    /// `text` of a CHAR: trailing blanks removed first.
    FixedText,
    /// `text` of a large value: `<chars>:<md5 hex>`.
    LargeText,
    /// `bytea`: `<bytes>:<md5 hex>`.
    Bytes,
    /// `jsonb::text`: `<chars>:<text>`.
    Json,
    /// `timestamptz`: microseconds since the Unix epoch.
    TimestampTz,
    /// `uuid`: lower-case hyphenated.
    Uuid,
    /// `bool`: `t` / `f`.
    Bool,
    /// Already the canonical text, computed by SQL (dates and timestamps, whose
    /// `to_char` form is kept in one place).
    Canonical,
}

impl Wire {
    /// The wire form and the COPY expression for a column of this category.
    /// `canonical_sql` is the column's SQL canonical expression (for [`Wire::Canonical`]).
    /// `empty` decides whether a `''` travels as NULL (a pair with Oracle) or as itself.
    pub fn for_column(
        quoted: &str,
        category: Category,
        canonical_sql: &str,
        empty: EmptyText,
    ) -> (Wire, String) {
        use Category::*;
        let text = |expr: String| match empty {
            EmptyText::IsNull => format!("NULLIF({expr}, '')"),
            EmptyText::IsValue => expr,
        };
        match category {
            Integer => (Wire::Int, format!("{quoted}::int8")),
            Decimal => (Wire::Numeric, format!("{quoted}::numeric")),
            Float => (Wire::Float, format!("{quoted}::float8")),
            Text | Other => (Wire::Text, text(format!("{quoted}::text"))),
            FixedChar => (Wire::FixedText, text(format!("rtrim({quoted}::text, ' ')"))),
            LargeText => (Wire::LargeText, text(format!("{quoted}::text"))),
            Binary => (Wire::Bytes, format!("{quoted}::bytea")),
            Json => (Wire::Json, format!("{quoted}::jsonb::text")),
            TimestampTz => (Wire::TimestampTz, format!("{quoted}::timestamptz")),
            Uuid => (Wire::Uuid, format!("{quoted}::uuid")),
            Boolean => (Wire::Bool, format!("{quoted}::bool")),
            Date | Timestamp => (Wire::Canonical, canonical_sql.to_string()),
        }
    }
}

/// Count and hash sum of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    pub count: u64,
    pub sum: u128,
}

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_US: i128 = 946_684_800_000_000;

fn malformed(what: &str) -> ValidatorError {
    ValidatorError::Internal(format!("binary COPY stream: {what}"))
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> Result<i64, ValidatorError> {
    b.try_into()
        .map(i64::from_be_bytes)
        .map_err(|_| malformed("an 8-byte value of another length"))
}

/// Characters in UTF-8 text (the bytes that do not continue a character).
fn chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| (**b & 0xC0) != 0x80).count()
}

/// Writes the canonical text of one value into `out`.
pub fn encode(wire: Wire, value: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), ValidatorError> {
    let Some(v) = value else {
        out.push(b'N');
        return Ok(());
    };
    let mut num = itoa::Buffer::new();
    match wire {
        Wire::Int => out.extend_from_slice(num.format(be_i64(v)?).as_bytes()),
        Wire::Numeric => numeric(v, out)?,
        Wire::Float => {
            let bits = u64::from_be_bytes(
                v.try_into()
                    .map_err(|_| malformed("a float8 of another length"))?,
            );
            let f = f64::from_bits(bits);
            if f.is_nan() {
                out.extend_from_slice(b"NaN");
            } else if f == 0.0 {
                out.push(b'0');
            } else {
                hex(&bits.to_be_bytes(), out);
            }
        }
        Wire::Text | Wire::FixedText | Wire::Json => {
            let text = if wire == Wire::FixedText {
                let end = v.iter().rposition(|b| *b != b' ').map_or(0, |i| i + 1);
                &v[..end]
            } else {
                v
            };
            out.extend_from_slice(num.format(chars(text)).as_bytes());
            out.push(b':');
            out.extend_from_slice(text);
        }
        Wire::LargeText => {
            out.extend_from_slice(num.format(chars(v)).as_bytes());
            out.push(b':');
            hex(&Md5::digest(v), out);
        }
        Wire::Bytes => {
            out.extend_from_slice(num.format(v.len()).as_bytes());
            out.push(b':');
            hex(&Md5::digest(v), out);
        }
        Wire::TimestampTz => match be_i64(v)? {
            i64::MAX => out.extend_from_slice(b"Infinity"),
            i64::MIN => out.extend_from_slice(b"-Infinity"),
            us => out.extend_from_slice(num.format(i128::from(us) + PG_EPOCH_US).as_bytes()),
        },
        Wire::Uuid => {
            if v.len() != 16 {
                return Err(malformed("a uuid of another length"));
            }
            for (i, part) in [&v[0..4], &v[4..6], &v[6..8], &v[8..10], &v[10..16]]
                .iter()
                .enumerate()
            {
                if i > 0 {
                    out.push(b'-');
                }
                hex(part, out);
            }
        }
        Wire::Bool => out.push(if v.first() == Some(&1) { b't' } else { b'f' }),
        Wire::Canonical => out.extend_from_slice(v),
    }
    Ok(())
}

fn hex(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0F)]);
    }
}

fn four_digits(d: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        b'0' + (d / 1000 % 10) as u8,
        b'0' + (d / 100 % 10) as u8,
        b'0' + (d / 10 % 10) as u8,
        b'0' + (d % 10) as u8,
    ]);
}

/// PostgreSQL's binary numeric (base-10000 digits) as `trim_scale(x)::text`.
fn numeric(v: &[u8], out: &mut Vec<u8>) -> Result<(), ValidatorError> {
    if v.len() < 8 {
        return Err(malformed("a short numeric"));
    }
    let ndigits = usize::try_from(be_i16(&v[0..2])).map_err(|_| malformed("numeric digits"))?;
    let weight = i32::from(be_i16(&v[2..4]));
    let sign = u16::from_be_bytes([v[4], v[5]]);
    if v.len() != 8 + 2 * ndigits {
        return Err(malformed("a numeric of another length"));
    }
    match sign {
        0xC000 => {
            out.extend_from_slice(b"NaN");
            return Ok(());
        }
        0xD000 => {
            out.extend_from_slice(b"Infinity");
            return Ok(());
        }
        0xF000 => {
            out.extend_from_slice(b"-Infinity");
            return Ok(());
        }
        0x0000 | 0x4000 => {}
        _ => return Err(malformed("a numeric sign")),
    }
    let digit = |i: i32| -> u16 {
        usize::try_from(i)
            .ok()
            .filter(|i| *i < ndigits)
            .map_or(0, |i| u16::from_be_bytes([v[8 + 2 * i], v[9 + 2 * i]]))
    };
    if (0..ndigits).all(|i| digit(i as i32) == 0) {
        out.push(b'0');
        return Ok(());
    }
    if sign == 0x4000 {
        out.push(b'-');
    }
    // Integer part: the groups of exponent weight … 0.
    if weight < 0 {
        out.push(b'0');
    } else {
        for e in 0..=weight {
            let d = digit(e);
            if e == 0 {
                out.extend_from_slice(itoa::Buffer::new().format(d).as_bytes());
            } else {
                four_digits(d, out);
            }
        }
    }
    // Fraction: the groups of exponent -1 … down to the last digit (groups before the
    // first stored digit, when weight < -1, are zeros), trailing zeros removed.
    let last = ndigits as i32 - 1;
    if last > weight {
        let mut fraction = Vec::with_capacity(4 * (last - weight) as usize);
        for i in (weight + 1)..=last {
            four_digits(digit(i), &mut fraction);
        }
        while fraction.last() == Some(&b'0') {
            fraction.pop();
        }
        if !fraction.is_empty() {
            out.push(b'.');
            out.extend_from_slice(&fraction);
        }
    }
    Ok(())
}

/// The 60-bit row hash of a canonical row text (as `row_hash_expr` computes it).
pub fn row_hash(text: &[u8]) -> u64 {
    let d = Md5::digest(text);
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) >> 4
}

/// Which function turns a canonical row text into its 60-bit hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowHash {
    /// MD5, as the databases compute it: needed whenever one side hashes in SQL.
    Md5,
    /// SipHash-1-3 (the standard library's, fixed keys): about three times cheaper
    /// than MD5 per row, for pairs where both sides stream, so both hashes are
    /// computed by this process in the same run.
    Sip,
}

impl RowHash {
    pub fn of(self, text: &[u8]) -> u64 {
        match self {
            RowHash::Md5 => row_hash(text),
            RowHash::Sip => {
                use std::hash::Hasher;
                let mut h = std::hash::DefaultHasher::new();
                h.write(text);
                h.finish() >> 4
            }
        }
    }
}

/// Parses a binary COPY of `(bucket int4, column…)` rows and sums each
/// bucket's row hashes. Feed it the stream's chunks in order, then `finish`.
pub struct BucketHasher {
    wires: Vec<Wire>,
    hash: RowHash,
    buffer: Vec<u8>,
    read: usize,
    header_done: bool,
    trailer_seen: bool,
    buckets: BTreeMap<i64, Bucket>,
    fields: Vec<Option<(usize, usize)>>,
    row: Vec<u8>,
    pub rows: u64,
}

impl BucketHasher {
    pub fn new(wires: Vec<Wire>, hash: RowHash) -> Self {
        BucketHasher {
            hash,
            fields: Vec::with_capacity(wires.len() + 1),
            wires,
            buffer: Vec::new(),
            read: 0,
            header_done: false,
            trailer_seen: false,
            buckets: BTreeMap::new(),
            row: Vec::with_capacity(256),
            rows: 0,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ValidatorError> {
        if self.read > 0 && self.read * 2 >= self.buffer.len() {
            self.buffer.drain(..self.read);
            self.read = 0;
        }
        self.buffer.extend_from_slice(chunk);
        if !self.header_done {
            let rest = &self.buffer[self.read..];
            if rest.len() < SIGNATURE.len() + 8 {
                return Ok(());
            }
            if &rest[..SIGNATURE.len()] != SIGNATURE {
                return Err(malformed("no PGCOPY signature"));
            }
            let extension = usize::try_from(be_i32(&rest[SIGNATURE.len() + 4..]))
                .map_err(|_| malformed("header extension length"))?;
            if rest.len() < SIGNATURE.len() + 8 + extension {
                return Ok(());
            }
            self.read += SIGNATURE.len() + 8 + extension;
            self.header_done = true;
        }
        while !self.trailer_seen && self.tuple()? {}
        Ok(())
    }

    /// Consumes one complete tuple from the buffer; false when more bytes are needed.
    fn tuple(&mut self) -> Result<bool, ValidatorError> {
        let buf = &self.buffer[self.read..];
        if buf.len() < 2 {
            return Ok(false);
        }
        let count = be_i16(buf);
        if count == -1 {
            self.trailer_seen = true;
            self.read += 2;
            return Ok(true);
        }
        if usize::try_from(count).ok() != Some(self.wires.len() + 1) {
            return Err(malformed(&format!(
                "{count} fields in a row, expected {}",
                self.wires.len() + 1
            )));
        }
        self.fields.clear();
        let mut at = 2usize;
        for _ in 0..count {
            if buf.len() < at + 4 {
                return Ok(false);
            }
            let len = be_i32(&buf[at..]);
            at += 4;
            if len < 0 {
                self.fields.push(None);
            } else {
                let len = len as usize;
                if buf.len() < at + len {
                    return Ok(false);
                }
                self.fields.push(Some((at, len)));
                at += len;
            }
        }
        let value = |f: Option<(usize, usize)>| f.map(|(s, l)| &buf[s..s + l]);
        let bucket = match value(self.fields[0]) {
            Some(b) if b.len() == 4 => i64::from(be_i32(b)),
            _ => return Err(malformed("a bucket number that is not an int4")),
        };
        self.row.clear();
        for (i, wire) in self.wires.iter().enumerate() {
            if i > 0 {
                self.row.push(b'|');
            }
            encode(*wire, value(self.fields[i + 1]), &mut self.row)?;
        }
        let h = self.hash.of(&self.row);
        let entry = self.buckets.entry(bucket).or_default();
        entry.count += 1;
        entry.sum += u128::from(h);
        self.rows += 1;
        self.read += at;
        Ok(true)
    }

    pub fn finish(self) -> Result<BTreeMap<i64, Bucket>, ValidatorError> {
        if !self.trailer_seen {
            return Err(malformed("the stream ended before its trailer"));
        }
        Ok(self.buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(wire: Wire, value: Option<&[u8]>) -> String {
        let mut out = Vec::new();
        encode(wire, value, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(digits.len() as i16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_lose_trailing_zeros_like_trim_scale() {
        // 1.50 = digits [1, 5000], weight 0
        assert_eq!(
            text(Wire::Numeric, Some(&numeric_bytes(0, 0, 2, &[1, 5000]))),
            "1.5"
        );
        // -0.05 = [500] weight -1
        assert_eq!(
            text(Wire::Numeric, Some(&numeric_bytes(-1, 0x4000, 2, &[500]))),
            "-0.05"
        );
        // 0.00000001 = [1] weight -2
        assert_eq!(
            text(Wire::Numeric, Some(&numeric_bytes(-2, 0, 8, &[1]))),
            "0.00000001"
        );
        // 12345678 = [1234, 5678] weight 1
        assert_eq!(
            text(Wire::Numeric, Some(&numeric_bytes(1, 0, 0, &[1234, 5678]))),
            "12345678"
        );
        // 100000000 = [1] weight 2 (trailing groups dropped)
        assert_eq!(
            text(Wire::Numeric, Some(&numeric_bytes(2, 0, 0, &[1]))),
            "100000000"
        );
        assert_eq!(text(Wire::Numeric, Some(&numeric_bytes(0, 0, 2, &[]))), "0");
        assert_eq!(
            text(Wire::Numeric, Some(&numeric_bytes(0, 0xC000, 0, &[]))),
            "NaN"
        );
        assert!(encode(Wire::Numeric, Some(&[0, 1]), &mut Vec::new()).is_err());
    }

    #[test]
    fn floats_ints_and_text_follow_the_canonical_table() {
        assert_eq!(text(Wire::Float, Some(&(-0.0f64).to_be_bytes())), "0");
        assert_eq!(text(Wire::Float, Some(&f64::NAN.to_be_bytes())), "NaN");
        assert_eq!(
            text(Wire::Float, Some(&1.5f64.to_be_bytes())),
            "3ff8000000000000"
        );
        assert_eq!(text(Wire::Int, Some(&(-42i64).to_be_bytes())), "-42");
        // '' as NULL is the COPY's job (NULLIF), for the pairs where Oracle is on a side.
        assert_eq!(text(Wire::Text, Some(b"")), "0:");
        assert_eq!(text(Wire::Text, Some("héllo".as_bytes())), "5:héllo");
        assert_eq!(text(Wire::FixedText, Some(b"ab  ")), "2:ab");
        assert_eq!(text(Wire::FixedText, Some(b"   ")), "0:");
        assert_eq!(
            text(Wire::LargeText, Some(b"")),
            "0:d41d8cd98f00b204e9800998ecf8427e"
        );
        let (_, keep) = Wire::for_column("\"c\"", Category::Text, "", EmptyText::IsValue);
        assert_eq!(keep, "\"c\"::text");
        let (_, null) = Wire::for_column("\"c\"", Category::FixedChar, "", EmptyText::IsNull);
        assert_eq!(null, "NULLIF(rtrim(\"c\"::text, ' '), '')");
        assert_eq!(text(Wire::Json, Some(b"{}")), "2:{}");
        assert_eq!(text(Wire::Int, None), "N");
        assert_eq!(text(Wire::Bool, Some(&[1])), "t");
        assert_eq!(
            text(Wire::Bytes, Some(b"")),
            "0:d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            text(Wire::TimestampTz, Some(&0i64.to_be_bytes())),
            "946684800000000"
        );
        assert_eq!(
            text(Wire::TimestampTz, Some(&i64::MAX.to_be_bytes())),
            "Infinity"
        );
        let uuid: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            text(Wire::Uuid, Some(&uuid)),
            "00010203-0405-0607-0809-0a0b0c0d0e0f"
        );
    }

    #[test]
    fn row_hashes_are_60_bits_and_deterministic() {
        for hash in [RowHash::Md5, RowHash::Sip] {
            assert_eq!(hash.of(b"1|N|3:abc"), hash.of(b"1|N|3:abc"));
            assert_ne!(hash.of(b"1|N|3:abc"), hash.of(b"1|N|3:abd"));
            assert!(hash.of(b"x") < 1 << 60);
        }
        // md5('x') = 9dd4e461268c8034f5c8564e155c67a6; its first 15 hex digits.
        assert_eq!(RowHash::Md5.of(b"x"), 0x9dd4e461268c803);
    }

    #[test]
    fn a_stream_cut_anywhere_gives_the_same_buckets() {
        let mut stream = SIGNATURE.to_vec();
        stream.extend_from_slice(&0i32.to_be_bytes());
        stream.extend_from_slice(&0i32.to_be_bytes());
        for (bucket, id) in [(0i32, 1i64), (0, 2), (1, 3)] {
            stream.extend_from_slice(&2i16.to_be_bytes());
            stream.extend_from_slice(&4i32.to_be_bytes());
            stream.extend_from_slice(&bucket.to_be_bytes());
            stream.extend_from_slice(&8i32.to_be_bytes());
            stream.extend_from_slice(&id.to_be_bytes());
        }
        stream.extend_from_slice(&(-1i16).to_be_bytes());
        let whole = {
            let mut h = BucketHasher::new(vec![Wire::Int], RowHash::Md5);
            h.feed(&stream).unwrap();
            h.finish().unwrap()
        };
        assert_eq!(whole[&0].count, 2);
        assert_eq!(
            whole[&1].sum,
            u128::from(row_hash(b"3")),
            "the row text of (3) is `3`"
        );
        for cut in 1..stream.len() {
            let mut h = BucketHasher::new(vec![Wire::Int], RowHash::Md5);
            h.feed(&stream[..cut]).unwrap();
            h.feed(&stream[cut..]).unwrap();
            assert_eq!(h.finish().unwrap(), whole, "cut at {cut}");
        }
        let mut h = BucketHasher::new(vec![Wire::Int], RowHash::Md5);
        h.feed(&stream[..stream.len() - 2]).unwrap();
        assert!(
            h.finish().is_err(),
            "a stream without its trailer is an error"
        );
    }
}
