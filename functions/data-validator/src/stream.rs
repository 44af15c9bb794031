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

/// The frames of a binary COPY stream: header, tuples, trailer. Feed it the
/// stream's chunks in order; each complete tuple comes out as its bytes and the
/// (offset, length) of each field (`None` for NULL), relative to those bytes.
struct Frames {
    expected: usize,
    buffer: Vec<u8>,
    read: usize,
    header_done: bool,
    trailer_seen: bool,
    fields: Vec<Option<(usize, usize)>>,
}

impl Frames {
    fn new(expected: usize) -> Self {
        Frames {
            expected,
            buffer: Vec::new(),
            read: 0,
            header_done: false,
            trailer_seen: false,
            fields: Vec::with_capacity(expected),
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<(), ValidatorError> {
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
        Ok(())
    }

    /// The next complete tuple, consumed; `None` when more bytes are needed or
    /// the trailer has been read.
    #[allow(clippy::type_complexity)]
    fn next(&mut self) -> Result<Option<(&[u8], &[Option<(usize, usize)>])>, ValidatorError> {
        let Frames {
            expected,
            buffer,
            read,
            header_done,
            trailer_seen,
            fields,
        } = self;
        if !*header_done || *trailer_seen {
            return Ok(None);
        }
        let start = *read;
        let buf = &buffer[start..];
        if buf.len() < 2 {
            return Ok(None);
        }
        let count = be_i16(buf);
        if count == -1 {
            *trailer_seen = true;
            *read += 2;
            return Ok(None);
        }
        if usize::try_from(count).ok() != Some(*expected) {
            return Err(malformed(&format!(
                "{count} fields in a row, expected {expected}"
            )));
        }
        fields.clear();
        let mut at = 2usize;
        for _ in 0..count {
            if buf.len() < at + 4 {
                return Ok(None);
            }
            let len = be_i32(&buf[at..]);
            at += 4;
            if len < 0 {
                fields.push(None);
            } else {
                let len = len as usize;
                if buf.len() < at + len {
                    return Ok(None);
                }
                fields.push(Some((at, len)));
                at += len;
            }
        }
        *read += at;
        Ok(Some((&buffer[start..start + at], &fields[..])))
    }
}

fn field(tuple: &[u8], f: Option<(usize, usize)>) -> Option<&[u8]> {
    f.map(|(s, l)| &tuple[s..s + l])
}

/// Writes the canonical row text of `wires` (fields `first..`) into `row`.
fn row_text(
    wires: &[Wire],
    tuple: &[u8],
    fields: &[Option<(usize, usize)>],
    first: usize,
    row: &mut Vec<u8>,
) -> Result<(), ValidatorError> {
    row.clear();
    for (i, wire) in wires.iter().enumerate() {
        if i > 0 {
            row.push(b'|');
        }
        encode(*wire, field(tuple, fields[first + i]), row)?;
    }
    Ok(())
}

/// Parses a binary COPY of `(bucket int4, column…)` rows and sums each
/// bucket's row hashes. Feed it the stream's chunks in order, then `finish`.
/// With [`BucketHasher::by_text_lead`] the first field is instead the leading
/// key's text, and the bucket is found here, in byte order (the "C" collation).
pub struct BucketHasher {
    wires: Vec<Wire>,
    hash: RowHash,
    /// Boundaries (byte order) when the first field is the lead text.
    text_boundaries: Option<Vec<Vec<u8>>>,
    frames: Frames,
    buckets: BTreeMap<i64, Bucket>,
    row: Vec<u8>,
    pub rows: u64,
}

impl BucketHasher {
    pub fn new(wires: Vec<Wire>, hash: RowHash) -> Self {
        BucketHasher {
            hash,
            frames: Frames::new(wires.len() + 1),
            wires,
            text_boundaries: None,
            buckets: BTreeMap::new(),
            row: Vec::with_capacity(256),
            rows: 0,
        }
    }

    /// The first field is the lead key's text; bucket `j` holds the values from
    /// boundary `j-1` up to boundary `j` in byte order, as `width_bucket` numbers
    /// them in the "C" collation. Why: PostgreSQL's `width_bucket` over a text
    /// array walks the array from its start for every probe (measured: 5.6 s for
    /// 1M rows and 1,000 boundaries, where the COPY of the same rows takes 1.0 s).
    pub fn by_text_lead(mut self, boundaries: &[String]) -> Self {
        let mut sorted: Vec<Vec<u8>> = boundaries.iter().map(|b| b.as_bytes().to_vec()).collect();
        // Already ascending when read from the source; sorting keeps the search valid anyway.
        sorted.sort();
        self.text_boundaries = Some(sorted);
        self
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ValidatorError> {
        self.frames.push(chunk)?;
        while let Some((tuple, fields)) = self.frames.next()? {
            let bucket = match (&self.text_boundaries, field(tuple, fields[0])) {
                (Some(bounds), Some(lead)) => {
                    bounds.partition_point(|b| b.as_slice() <= lead) as i64
                }
                (None, Some(b)) if b.len() == 4 => i64::from(be_i32(b)),
                _ => return Err(malformed("a bucket number that is not an int4")),
            };
            row_text(&self.wires, tuple, fields, 1, &mut self.row)?;
            let h = self.hash.of(&self.row);
            let entry = self.buckets.entry(bucket).or_default();
            entry.count += 1;
            entry.sum += u128::from(h);
            self.rows += 1;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<BTreeMap<i64, Bucket>, ValidatorError> {
        if !self.frames.trailer_seen {
            return Err(malformed("the stream ended before its trailer"));
        }
        Ok(self.buckets)
    }
}

/// How a key column travels in a key-ordered COPY ([`crate::sql::SideSql::keyed_copy`]),
/// and how its value becomes bytes that sort as PostgreSQL sorted the rows: the
/// concatenated bytes of a row's key columns compare (`memcmp`) as its key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrder {
    /// `int8`.
    Int8,
    /// `float8`: -0 = 0, NaN after +Infinity.
    Float8,
    /// `numeric`: NaN after +Infinity.
    Numeric,
    /// `text` in the "C" collation, or `bytea`: byte order.
    Bytes,
    /// `uuid`: byte order.
    Uuid,
    /// `bool`: false before true.
    Bool,
    /// `timestamp` or `timestamptz`: microseconds (`int8`), infinities at the ends.
    Micros,
}

impl KeyOrder {
    /// Whether a lead key column's boundary text can be made from its order field
    /// (otherwise the COPY sends the text as an extra field).
    pub fn gives_lead_text(self) -> bool {
        matches!(
            self,
            KeyOrder::Int8 | KeyOrder::Numeric | KeyOrder::Bytes | KeyOrder::Uuid | KeyOrder::Bool
        )
    }

    /// Appends the order-preserving bytes of one value.
    pub fn append(self, v: &[u8], out: &mut Vec<u8>) -> Result<(), ValidatorError> {
        let flip = |x: i64| (x as u64) ^ (1 << 63);
        match self {
            KeyOrder::Int8 | KeyOrder::Micros => {
                out.extend_from_slice(&flip(be_i64(v)?).to_be_bytes())
            }
            KeyOrder::Float8 => {
                let f = f64::from_bits(u64::from_be_bytes(
                    v.try_into()
                        .map_err(|_| malformed("a float8 of another length"))?,
                ));
                let bits = if f.is_nan() {
                    u64::MAX
                } else {
                    let b = (if f == 0.0 { 0.0f64 } else { f }).to_bits();
                    if b >> 63 == 1 {
                        !b
                    } else {
                        b | (1 << 63)
                    }
                };
                out.extend_from_slice(&bits.to_be_bytes());
            }
            KeyOrder::Numeric => numeric_order(v, out)?,
            KeyOrder::Bytes => {
                // 0x00 escaped as 00 FF and a 00 00 terminator: a prefix sorts first,
                // whatever key column follows.
                for b in v {
                    out.push(*b);
                    if *b == 0 {
                        out.push(0xFF);
                    }
                }
                out.extend_from_slice(&[0, 0]);
            }
            KeyOrder::Uuid | KeyOrder::Bool => out.extend_from_slice(v),
        }
        Ok(())
    }

    /// The boundary text of a lead value sent in this form, as
    /// [`crate::sql::SideSql`] reads boundaries back.
    pub fn lead_text(self, v: &[u8]) -> Result<String, ValidatorError> {
        let mut out = Vec::new();
        match self {
            KeyOrder::Int8 => encode(Wire::Int, Some(v), &mut out)?,
            KeyOrder::Numeric => numeric(v, &mut out)?,
            KeyOrder::Uuid => encode(Wire::Uuid, Some(v), &mut out)?,
            KeyOrder::Bool => encode(Wire::Bool, Some(v), &mut out)?,
            _ => out.extend_from_slice(v),
        }
        String::from_utf8(out).map_err(|_| malformed("a key that is not UTF-8"))
    }
}

/// Order-preserving bytes of a binary numeric: a class byte (-Infinity, negative,
/// zero, positive, +Infinity, NaN), then for a finite value its weight and its
/// base-10000 digits (each + 1, then a 0 terminator), all inverted when negative.
fn numeric_order(v: &[u8], out: &mut Vec<u8>) -> Result<(), ValidatorError> {
    if v.len() < 8 {
        return Err(malformed("a short numeric"));
    }
    let ndigits = usize::try_from(be_i16(&v[0..2])).map_err(|_| malformed("numeric digits"))?;
    if v.len() != 8 + 2 * ndigits {
        return Err(malformed("a numeric of another length"));
    }
    let weight = be_i16(&v[2..4]);
    let sign = u16::from_be_bytes([v[4], v[5]]);
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| u16::from_be_bytes([v[8 + 2 * i], v[9 + 2 * i]]))
        .collect();
    // Stored numerics carry no leading or trailing zero digits; strip anyway.
    let first = digits.iter().position(|d| *d != 0);
    let Some(first) = first else {
        match sign {
            0xC000 => out.push(5),
            0xD000 => out.push(4),
            0xF000 => out.push(0),
            _ => out.push(2),
        }
        return Ok(());
    };
    let last = digits.iter().rposition(|d| *d != 0).unwrap_or(first);
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 => {
            out.push(5);
            return Ok(());
        }
        0xD000 => {
            out.push(4);
            return Ok(());
        }
        0xF000 => {
            out.push(0);
            return Ok(());
        }
        _ => return Err(malformed("a numeric sign")),
    };
    out.push(if negative { 1 } else { 3 });
    let mut body = Vec::with_capacity(4 + 2 * (last - first + 2));
    let w = (weight as i32 - first as i32) as i16;
    body.extend_from_slice(&((w as u16) ^ 0x8000).to_be_bytes());
    for d in &digits[first..=last] {
        body.extend_from_slice(&(d + 1).to_be_bytes());
    }
    body.extend_from_slice(&[0, 0]);
    if negative {
        body.iter_mut().for_each(|b| *b = !*b);
    }
    out.extend_from_slice(&body);
    Ok(())
}

/// Rows of a key-ordered COPY as [`KeyedParser`] hands them on: each row's
/// order-preserving key bytes, its 60-bit hash and its lead value's raw bytes.
#[derive(Debug, Default)]
pub struct KeyedBatch {
    keys: Vec<u8>,
    key_ends: Vec<usize>,
    leads: Vec<u8>,
    lead_ends: Vec<usize>,
    hashes: Vec<u64>,
}

impl KeyedBatch {
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    fn span(ends: &[usize], i: usize) -> (usize, usize) {
        (if i == 0 { 0 } else { ends[i - 1] }, ends[i])
    }

    pub fn key(&self, i: usize) -> &[u8] {
        let (a, b) = Self::span(&self.key_ends, i);
        &self.keys[a..b]
    }

    pub fn lead(&self, i: usize) -> &[u8] {
        let (a, b) = Self::span(&self.lead_ends, i);
        &self.leads[a..b]
    }

    pub fn hash(&self, i: usize) -> u64 {
        self.hashes[i]
    }
}

/// Parses a key-ordered binary COPY: fields `(key order…, [lead text], column…)`.
pub struct KeyedParser {
    keys: Vec<KeyOrder>,
    /// The lead's boundary text travels as a field of its own (after the key fields).
    lead_field: bool,
    wires: Vec<Wire>,
    hash: RowHash,
    frames: Frames,
    row: Vec<u8>,
    batch: KeyedBatch,
    pub rows: u64,
}

impl KeyedParser {
    pub fn new(keys: Vec<KeyOrder>, lead_field: bool, wires: Vec<Wire>, hash: RowHash) -> Self {
        let expected = keys.len() + usize::from(lead_field) + wires.len();
        KeyedParser {
            keys,
            lead_field,
            wires,
            hash,
            frames: Frames::new(expected),
            row: Vec::with_capacity(256),
            batch: KeyedBatch::default(),
            rows: 0,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ValidatorError> {
        self.frames.push(chunk)?;
        let k = self.keys.len();
        let first_wire = k + usize::from(self.lead_field);
        while let Some((tuple, fields)) = self.frames.next()? {
            for (i, order) in self.keys.iter().enumerate() {
                let v =
                    field(tuple, fields[i]).ok_or_else(|| malformed("a NULL in a key column"))?;
                order.append(v, &mut self.batch.keys)?;
            }
            self.batch.key_ends.push(self.batch.keys.len());
            let lead = field(tuple, fields[if self.lead_field { k } else { 0 }])
                .ok_or_else(|| malformed("a NULL lead key"))?;
            self.batch.leads.extend_from_slice(lead);
            self.batch.lead_ends.push(self.batch.leads.len());
            row_text(&self.wires, tuple, fields, first_wire, &mut self.row)?;
            self.batch.hashes.push(self.hash.of(&self.row));
            self.rows += 1;
        }
        Ok(())
    }

    /// Rows parsed and not yet taken.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// The rows parsed so far, leaving an empty batch.
    pub fn take(&mut self) -> KeyedBatch {
        std::mem::take(&mut self.batch)
    }

    pub fn finished(&self) -> bool {
        self.frames.trailer_seen
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

    fn ordered(order: KeyOrder, values: &[Vec<u8>]) {
        let encoded: Vec<Vec<u8>> = values
            .iter()
            .map(|v| {
                let mut out = Vec::new();
                order.append(v, &mut out).unwrap();
                // A second key column after it must not change the order.
                out.extend_from_slice(&[0xFF, 0x00]);
                out
            })
            .collect();
        for (i, w) in encoded.windows(2).enumerate() {
            assert!(
                w[0] < w[1],
                "{order:?}: value {i} does not sort before {}",
                i + 1
            );
        }
    }

    #[test]
    fn key_bytes_sort_as_postgresql_sorts_the_keys() {
        ordered(
            KeyOrder::Int8,
            &[i64::MIN, -5, -1, 0, 1, 9, 10, i64::MAX].map(|v| v.to_be_bytes().to_vec()),
        );
        ordered(
            KeyOrder::Float8,
            &[
                f64::NEG_INFINITY,
                -2.5,
                -0.5,
                0.0,
                1e-300,
                2.5,
                f64::INFINITY,
                f64::NAN,
            ]
            .map(|v| v.to_be_bytes().to_vec()),
        );
        // -Infinity, -12345678, -1.5, -1, -0.05, 0, 0.00000001, 0.05, 1, 1.00005, 1.5,
        // 9999, 10000, 12345678, Infinity, NaN
        ordered(
            KeyOrder::Numeric,
            &[
                numeric_bytes(0, 0xF000, 0, &[]),
                numeric_bytes(1, 0x4000, 0, &[1234, 5678]),
                numeric_bytes(0, 0x4000, 1, &[1, 5000]),
                numeric_bytes(0, 0x4000, 0, &[1]),
                numeric_bytes(-1, 0x4000, 2, &[500]),
                numeric_bytes(0, 0, 0, &[]),
                numeric_bytes(-2, 0, 8, &[1]),
                numeric_bytes(-1, 0, 2, &[500]),
                numeric_bytes(0, 0, 0, &[1]),
                numeric_bytes(0, 0, 5, &[1, 0, 5000]),
                numeric_bytes(0, 0, 1, &[1, 5000]),
                numeric_bytes(0, 0, 0, &[9999]),
                numeric_bytes(1, 0, 0, &[1]),
                numeric_bytes(1, 0, 0, &[1234, 5678]),
                numeric_bytes(0, 0xD000, 0, &[]),
                numeric_bytes(0, 0xC000, 0, &[]),
            ],
        );
        // Byte order ("C"), a prefix first, a zero byte (bytea) kept apart from the end.
        ordered(
            KeyOrder::Bytes,
            &[
                b"".to_vec(),
                b"\0".to_vec(),
                b"\0\0".to_vec(),
                b"\x01".to_vec(),
                b"A".to_vec(),
                b"Z".to_vec(),
                b"a".to_vec(),
                b"ab".to_vec(),
                "é".as_bytes().to_vec(),
            ],
        );
        assert_eq!(
            KeyOrder::Numeric
                .lead_text(&numeric_bytes(0, 0x4000, 2, &[1, 5000]))
                .unwrap(),
            "-1.5"
        );
        assert_eq!(
            KeyOrder::Int8.lead_text(&42i64.to_be_bytes()).unwrap(),
            "42"
        );
        assert!(!KeyOrder::Micros.gives_lead_text());
    }

    #[test]
    fn a_keyed_stream_cut_anywhere_gives_the_same_rows() {
        let mut stream = SIGNATURE.to_vec();
        stream.extend_from_slice(&0i32.to_be_bytes());
        stream.extend_from_slice(&0i32.to_be_bytes());
        for id in [1i64, 2, 30] {
            stream.extend_from_slice(&2i16.to_be_bytes());
            stream.extend_from_slice(&8i32.to_be_bytes());
            stream.extend_from_slice(&id.to_be_bytes());
            stream.extend_from_slice(&1i32.to_be_bytes());
            stream.push(b'x');
        }
        stream.extend_from_slice(&(-1i16).to_be_bytes());
        for cut in 1..stream.len() {
            let mut p =
                KeyedParser::new(vec![KeyOrder::Int8], false, vec![Wire::Text], RowHash::Md5);
            p.feed(&stream[..cut]).unwrap();
            p.feed(&stream[cut..]).unwrap();
            assert!(p.finished());
            let batch = p.take();
            assert_eq!(batch.len(), 3, "cut at {cut}");
            assert!(batch.key(0) < batch.key(1) && batch.key(1) < batch.key(2));
            assert_eq!(batch.lead(2), 30i64.to_be_bytes());
            assert_eq!(batch.hash(0), row_hash(b"1:x"));
        }
    }

    #[test]
    fn a_text_lead_is_bucketed_in_byte_order_like_width_bucket() {
        let mut stream = SIGNATURE.to_vec();
        stream.extend_from_slice(&0i32.to_be_bytes());
        stream.extend_from_slice(&0i32.to_be_bytes());
        // ICU en-US would put "b" before "B" and "é" between "e" and "f"; bytes do not.
        let keys: [&[u8]; 6] = [b"A", b"B", b"Z", b"a", b"b", "\u{e9}".as_bytes()];
        for (id, key) in keys.iter().enumerate() {
            stream.extend_from_slice(&2i16.to_be_bytes());
            stream.extend_from_slice(&(key.len() as i32).to_be_bytes());
            stream.extend_from_slice(key);
            stream.extend_from_slice(&8i32.to_be_bytes());
            stream.extend_from_slice(&(id as i64).to_be_bytes());
        }
        stream.extend_from_slice(&(-1i16).to_be_bytes());
        let mut h = BucketHasher::new(vec![Wire::Int], RowHash::Md5)
            .by_text_lead(&["B".into(), "b".into()]);
        h.feed(&stream).unwrap();
        let counts: Vec<(i64, u64)> = h
            .finish()
            .unwrap()
            .into_iter()
            .map(|(k, b)| (k, b.count))
            .collect();
        // Below "B": A; from "B" (a boundary opens its bucket) below "b": B, Z, a; from "b": b, é.
        assert_eq!(counts, vec![(0, 1), (1, 3), (2, 2)]);
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
