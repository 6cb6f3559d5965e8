//! Settings the engine keeps in the metaverse (`meta`) and each connector's delta watermark.
use rusqlite::{params, Connection, OptionalExtension, Result};

pub(crate) fn get(c: &Connection, key: &str) -> Result<Option<String>> {
    c.prepare_cached("SELECT value FROM meta WHERE key=?1")?.query_row([key], |r| r.get(0)).optional()
}

pub(crate) fn set(c: &Connection, key: &str, value: &str) -> Result<()> {
    c.prepare_cached("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value")?
        .execute(params![key, value])?;
    Ok(())
}

pub(crate) fn delete(c: &Connection, key: &str) -> Result<()> {
    c.prepare_cached("DELETE FROM meta WHERE key=?1")?.execute([key])?;
    Ok(())
}

pub(crate) fn watermark(c: &Connection, connector: &str) -> Result<Option<String>> {
    Ok(c.prepare_cached("SELECT watermark FROM connector WHERE name=?1")?
        .query_row([connector], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

pub(crate) fn set_watermark(c: &Connection, connector: &str, w: Option<&str>) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO connector(name, watermark) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET watermark=excluded.watermark",
    )?
    .execute(params![connector, w])?;
    Ok(())
}
