//! Event identifiers: UUIDv7 (RFC 9562), time-ordered, built without a lock or a clock read
//! beyond the event's own timestamp.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The identifier of one published event (also used for correlation and causation ids): a
/// UUIDv7 (RFC 9562), so ids sort by time and other systems read them as UUIDs.
///
/// The 48-bit timestamp is the event's [`time`](crate::EventMeta::time) in milliseconds; the
/// 74 other bits hold a random per-process prefix and a per-process sequence, so ids are
/// unique within a process and, with overwhelming probability, across processes.
///
/// ```
/// use eventbus_core::EventId;
///
/// let id = EventId::new();
/// let uuid = id.to_string();
/// assert_eq!(&uuid[14..15], "7"); // the version nibble
/// assert_eq!(uuid.parse::<EventId>(), Ok(id));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
// Two halves, high first (so the derived order is the numeric one), rather than a `u128`:
// its 16-byte alignment would pad every `Option<EventId>` of every event's metadata.
pub struct EventId(u64, u64);

/// Sequence numbers are handed out to each thread in blocks, so concurrent publishers do not
/// contend on one atomic counter.
const BLOCK: u64 = 1024;
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static LOCAL: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

impl EventId {
    /// A fresh id for now.
    pub fn new() -> Self {
        Self::at(SystemTime::now(), next_sequence())
    }

    /// The id of the event with this sequence number published at `time`: what a lazily
    /// identified event's id turns out to be once its time is known.
    pub(crate) fn at(time: SystemTime, sequence: u64) -> Self {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // 10 bytes of "counter or random" per RFC 9562: 4 of the process prefix (the builder
        // overwrites 4 and 2 of their bits with the version and the variant), then 6 of the
        // sequence, which stay whole.
        let mut tail = [0u8; 10];
        tail[..4].copy_from_slice(&process_prefix().to_be_bytes());
        tail[4..].copy_from_slice(&sequence.to_be_bytes()[2..]);
        let uuid = uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid();
        Self::from_u128(uuid.as_u128())
    }

    /// The id as a number.
    pub fn as_u128(self) -> u128 {
        (u128::from(self.0) << 64) | u128::from(self.1)
    }

    /// Rebuilds an id from [`as_u128`](Self::as_u128).
    pub fn from_u128(value: u128) -> Self {
        EventId((value >> 64) as u64, value as u64)
    }
}

/// The next sequence number of this process: unique, cheap (a thread-local counter).
pub(crate) fn next_sequence() -> u64 {
    LOCAL.with(|local| {
        let (mut next, mut end) = local.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed) * BLOCK;
            end = next + BLOCK;
        }
        local.set((next + 1, end));
        next
    })
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

fn process_prefix() -> u32 {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS; mixing in time and pid guards against a poor seed.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
            hasher.write_u128(now.as_nanos());
        }
        hasher.finish() as u32
    })
}

impl EventId {
    /// The UUID-shaped text form, written without the formatting machinery: the wire format
    /// writes and reads ids for every event.
    pub(crate) fn hyphenated(self) -> IdText {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let value = self.as_u128();
        let mut text = [b'-'; 36];
        let mut digit = 0;
        for (i, byte) in text.iter_mut().enumerate() {
            if !matches!(i, 8 | 13 | 18 | 23) {
                *byte = HEX[(value >> (124 - 4 * digit)) as usize & 0xf];
                digit += 1;
            }
        }
        IdText(text)
    }
}

/// An [`EventId`] as text, on the stack.
pub(crate) struct IdText([u8; 36]);

impl std::ops::Deref for IdText {
    type Target = str;
    fn deref(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits and dashes are ASCII")
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hyphenated())
    }
}

/// The error of parsing an [`EventId`]: not 32 hex digits (dashes allowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseEventIdError;

impl fmt::Display for ParseEventIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event id is 32 hex digits, dashes allowed")
    }
}

impl std::error::Error for ParseEventIdError {}

impl std::str::FromStr for EventId {
    type Err = ParseEventIdError;

    /// Parses the [`Display`](fmt::Display) form back.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut value = 0u128;
        let mut digits = 0;
        for byte in text.bytes().filter(|b| *b != b'-') {
            let digit = char::from(byte).to_digit(16).ok_or(ParseEventIdError)?;
            value = (value << 4) | u128::from(digit);
            digits += 1;
            if digits > 32 {
                return Err(ParseEventIdError);
            }
        }
        if digits == 32 {
            Ok(EventId::from_u128(value))
        } else {
            Err(ParseEventIdError)
        }
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_across_threads() {
        let ids: Vec<EventId> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..5000).map(|_| EventId::new()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn ids_are_uuid_v7_with_the_time_given() {
        let time = UNIX_EPOCH + std::time::Duration::from_millis(1_796_025_600_123);
        let id = EventId::at(time, 7);
        let uuid = uuid::Uuid::from_u128(id.as_u128());
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        assert_eq!((secs, nanos), (1_796_025_600, 123_000_000));
        assert_eq!(
            EventId::at(time, 7),
            id,
            "the same time and sequence, the same id"
        );
        assert_ne!(EventId::at(time, 8), id);
        assert!(
            EventId::at(time + std::time::Duration::from_millis(1), 0) > id,
            "ids sort by time"
        );
    }

    #[test]
    fn display_is_uuid_shaped() {
        let text = EventId::from_u128(0x0123456789abcdef_0011223344556677).to_string();
        assert_eq!(text, "01234567-89ab-cdef-0011-223344556677");
        assert_eq!(
            text.parse::<EventId>(),
            Ok(EventId::from_u128(0x0123456789abcdef_0011223344556677))
        );
        assert_eq!(
            text.replace('-', "")
                .parse::<EventId>()
                .map(EventId::as_u128),
            Ok(0x0123456789abcdef_0011223344556677)
        );
        for bad in [
            "not-an-id",
            "",
            "0123456789abcdef0011223344556677ff",
            "0123456789abcdef001122334455667",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
    }
}
