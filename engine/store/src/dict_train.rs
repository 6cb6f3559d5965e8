//! Training a column's compression dictionary (packed.rs) in one pass.
//!
//! zstd's `ZDICT_trainFromBuffer` (what `zstd::dict::from_samples` calls) searches fastCover's
//! segment size among five values, building, scoring and finishing a dictionary for each: a
//! full sync of 20,000 people spent a twentieth of its instructions there. Its choices on
//! idflow's columns varied from 537 to 1998 bytes. Here one dictionary is built with the middle
//! one (1024), from every sample (the search trains on three quarters and scores on the rest)
//! and with entropy tables for the level values are compressed at (the search assumes zstd's
//! default, 3): the database of 100,000 people after export is 0.04% larger, and that full
//! sync takes 4.8% fewer instructions.
use zstd_sys as z;

/// fastCover's segment size, in bytes (the middle of the five `ZDICT_trainFromBuffer` tries).
const SEGMENT: u32 = 1024;
/// The d-mer size `ZDICT_trainFromBuffer` uses.
const DMER: u32 = 8;

/// A dictionary of at most `capacity` bytes trained from `samples`, compressing at `level`;
/// zstd's error name when it cannot make one (too few or too uniform samples).
pub(crate) fn train(samples: &[Vec<u8>], capacity: usize, level: i32) -> Result<Vec<u8>, String> {
    let flat = samples.concat();
    let sizes: Vec<usize> = samples.iter().map(Vec::len).collect();
    let count = u32::try_from(sizes.len()).map_err(|_| "too many samples".to_string())?;
    let mut out = vec![0u8; capacity];
    let params = z::ZDICT_fastCover_params_t {
        k: SEGMENT,
        d: DMER,
        // Zero is zstd's default: f = 20, accel = 1. This entry point trains on every sample
        // (it sets the split point to 1 itself) and reads neither steps, threads nor shrinking.
        f: 0,
        steps: 0,
        nbThreads: 0,
        splitPoint: 0.0,
        accel: 0,
        shrinkDict: 0,
        shrinkDictMaxRegression: 0,
        zParams: z::ZDICT_params_t { compressionLevel: level, notificationLevel: 0, dictID: 0 },
    };
    // SAFETY: `out` holds `capacity` writable bytes; `flat` holds the samples back to back and
    // `sizes` their `count` lengths, which add up to `flat.len()`; zstd reads and writes only
    // within those and keeps no pointer after it returns.
    let n = unsafe {
        z::ZDICT_trainFromBuffer_fastCover(out.as_mut_ptr().cast(), capacity, flat.as_ptr().cast(), sizes.as_ptr(), count, params)
    };
    // SAFETY: ZDICT_isError and ZDICT_getErrorName only read the code; the name is a static
    // C string.
    if unsafe { z::ZDICT_isError(n) } != 0 {
        let name = unsafe { std::ffi::CStr::from_ptr(z::ZDICT_getErrorName(n)) };
        return Err(name.to_string_lossy().into_owned());
    }
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                format!(
                    r#"{{"cn":["Person {i}"],"mail":["p{i}@example.org"],"objectClass":["inetOrgPerson","top"],"title":["Engineer {}"]}}"#,
                    i % 7
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn a_dictionary_trained_once_compresses_what_it_was_trained_on_and_reads_back() {
        let s = samples(2000);
        let dict = train(&s, 16 * 1024, 1).expect("a dictionary");
        assert!(!dict.is_empty() && dict.len() <= 16 * 1024, "{} bytes", dict.len());
        let mut c = zstd::bulk::Compressor::with_dictionary(1, &dict).expect("compressor");
        let mut d = zstd::bulk::Decompressor::with_dictionary(&dict).expect("decompressor");
        let packed = c.compress(&s[1234]).expect("compressed");
        assert!(packed.len() < s[1234].len() / 2, "{} of {} bytes", packed.len(), s[1234].len());
        assert_eq!(d.decompress(&packed, 1 << 16).expect("decompressed"), s[1234]);
    }

    #[test]
    fn too_little_to_learn_from_is_an_error_not_a_dictionary() {
        assert!(train(&[], 16 * 1024, 1).is_err());
        assert!(train(&vec![b"{}".to_vec(); 3], 16 * 1024, 1).is_err());
    }
}
