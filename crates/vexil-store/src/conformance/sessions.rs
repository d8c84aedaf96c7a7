//! Conformance cases for console sessions and for replacing and deleting settings (the server
//! secret's rotation).

use super::{assert_conflict, read_ok, write_ok, T0};
use crate::rows::SessionRow;
use crate::Store;

fn session(hash: char, key_id: &str, expires_at: i64) -> SessionRow {
    SessionRow {
        hash: hash.to_string().repeat(64),
        key_id: key_id.to_owned(),
        created_at: T0,
        expires_at,
    }
}

/// Sessions are found by hash; a duplicate hash conflicts without spoiling the transaction;
/// one session, a key's sessions and the expired ones are deleted apart, and a read
/// transaction refuses all of it.
pub fn sessions_round_trip(store: &dyn Store) {
    let (a, b, c) = (
        session('a', "k1", T0 + 100),
        session('b', "k1", T0 + 200),
        session('c', "k2", T0 + 50),
    );
    let d = session('d', "k2", T0 + 300);
    write_ok(store, "insert sessions", |tx| {
        for s in [&a, &b, &c, &d] {
            tx.insert_session(s)?;
        }
        let mut same = session('a', "k9", T0);
        same.created_at = T0 + 1;
        assert_conflict(tx.insert_session(&same), "session", "hash", "same hash");
        // The conflict left the transaction usable.
        assert_eq!(tx.session_by_hash(&a.hash)?, Some(a.clone()));
        Ok(())
    });
    read_ok(store, "read sessions", |tx| {
        assert_eq!(tx.session_by_hash(&c.hash)?, Some(c.clone()));
        assert_eq!(tx.session_by_hash(&"e".repeat(64))?, None);
        assert!(tx.delete_session(&a.hash).is_err(), "read-only");
        assert!(tx.purge_sessions(T0 + 1000).is_err(), "read-only");
        Ok(())
    });
    write_ok(store, "delete sessions", |tx| {
        assert!(tx.delete_session(&a.hash)?);
        assert!(!tx.delete_session(&a.hash)?, "gone already");
        // `c` expires at T0 + 50: purged at that very time, `b` and `d` later.
        assert_eq!(tx.purge_sessions(T0 + 50)?, 1);
        assert_eq!(tx.delete_key_sessions("k1")?, 1);
        assert_eq!(tx.delete_key_sessions("k1")?, 0);
        Ok(())
    });
    read_ok(store, "what is left", |tx| {
        for gone in [&a, &b, &c] {
            assert_eq!(tx.session_by_hash(&gone.hash)?, None, "{gone:?}");
        }
        assert_eq!(tx.session_by_hash(&d.hash)?, Some(d.clone()));
        Ok(())
    });
}

/// `put_setting` inserts or replaces; `delete_setting` removes and says whether it did.
pub fn settings_put_and_delete(store: &dyn Store) {
    write_ok(store, "put settings", |tx| {
        tx.put_setting("secret", "first")?;
        tx.put_setting("secret", "second")?;
        assert!(!tx.insert_setting("secret", "third")?);
        tx.put_setting("previous", "old")?;
        Ok(())
    });
    read_ok(store, "read back", |tx| {
        assert_eq!(tx.get_setting("secret")?.as_deref(), Some("second"));
        assert!(tx.put_setting("secret", "x").is_err(), "read-only");
        Ok(())
    });
    write_ok(store, "delete", |tx| {
        assert!(tx.delete_setting("previous")?);
        assert!(!tx.delete_setting("previous")?);
        assert!(!tx.delete_setting("never")?);
        Ok(())
    });
    read_ok(store, "after delete", |tx| {
        assert_eq!(tx.get_setting("previous")?, None);
        assert_eq!(tx.get_setting("secret")?.as_deref(), Some("second"));
        Ok(())
    });
}
