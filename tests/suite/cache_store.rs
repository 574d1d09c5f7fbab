//! The object store and the memory tier: round trips, verification of
//! corrupt objects, eviction, failure cleanup and concurrent writers.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use fuseflow::Error;
use fuseflow::cache::{GcReport, Lookup, MemoryTier, ObjectStore, STALE_TEMP_AGE};
use fuseflow::data::{ContentHash, hash_table};
use fuseflow::pipeline::Table;

use crate::common::*;

/// A table of every hashable fuseflow dtype, with nulls, in three chunks.
fn mixed_table(rows: usize, seed: u64) -> Table {
    let mut rng = Rng::new(seed);
    let b = batch(vec![
        ("f64", f64_array(&gen_f64(&mut rng, rows))),
        ("f32", f32_array(&gen_f32(&mut rng, rows))),
        ("i32", i32_array(&gen_i32(&mut rng, rows))),
        ("i64", i64_array(&gen_i64(&mut rng, rows))),
        ("bool", bool_array(&gen_bool(&mut rng, rows))),
        ("str", str_array(&gen_str(&mut rng, rows))),
    ]);
    chunked(&b, 3)
}

/// One f64 column without nulls: the file is almost all value bytes.
fn dense_table(rows: usize, seed: u64) -> Table {
    let mut rng = Rng::new(seed);
    let values: Vec<Option<f64>> = (0..rows).map(|_| Some(rng.unit())).collect();
    table(vec![("x", f64_array(&values))])
}

fn hit(lookup: Lookup) -> Table {
    match lookup {
        Lookup::Hit(t) => t,
        other => panic!("expected a hit, got {other:?}"),
    }
}

fn set_mtime(path: &Path, t: SystemTime) {
    File::open(path).unwrap().set_modified(t).unwrap();
}

fn tmp_files(store: &ObjectStore) -> usize {
    std::fs::read_dir(store.root().join("tmp")).unwrap().count()
}

#[test]
fn put_then_get_returns_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let table = mixed_table(1000, 1);
    let hash = store.put(&table).unwrap();
    assert_eq!(hash, hash_table(&table).unwrap());

    let back = hit(store.get(&hash).unwrap());
    assert_eq!(back.schema(), table.schema());
    assert_eq!(back.batches(), table.batches());

    assert_eq!(store.put(&table).unwrap(), hash, "second put is a no-op");
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hash, hash);
    assert_eq!(listed[0].path, store.object_path(&hash));
    assert_eq!(store.total_size().unwrap(), listed[0].bytes);
    assert_eq!(tmp_files(&store), 0);
}

#[test]
fn empty_table_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let schema = mixed_table(1, 0).schema().clone();
    let empty = Table::empty(schema);
    let hash = store.put(&empty).unwrap();
    let back = hit(store.get(&hash).unwrap());
    assert_eq!(back.num_rows(), 0);
    assert_eq!(back.schema(), empty.schema());
}

#[test]
fn unknown_hash_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let hash = ContentHash::from_bytes([7; 32]);
    assert!(matches!(store.get(&hash).unwrap(), Lookup::Missing));
}

/// Damage the stored object with `damage`, then check that `get` reports and
/// removes it and that the object can be stored again.
fn check_corruption_detected(damage: impl Fn(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let table = dense_table(100_000, 2);
    let hash = store.put(&table).unwrap();
    let path = store.object_path(&hash);
    damage(&path);

    match store.get(&hash).unwrap() {
        Lookup::Corrupt {
            path: removed,
            reason,
        } => {
            assert_eq!(removed, path);
            assert!(!reason.is_empty());
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!path.exists(), "corrupt object removed");
    assert!(matches!(store.get(&hash).unwrap(), Lookup::Missing));

    assert_eq!(store.put(&table).unwrap(), hash);
    assert_eq!(hit(store.get(&hash).unwrap()).batches(), table.batches());
}

#[test]
fn truncated_object_is_reported_and_removed() {
    check_corruption_detected(|path| {
        let len = std::fs::metadata(path).unwrap().len();
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    });
}

#[test]
fn flipped_byte_is_reported_and_removed() {
    check_corruption_detected(|path| {
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(path, bytes).unwrap();
    });
}

#[test]
fn garbage_file_is_reported_and_removed() {
    check_corruption_detected(|path| std::fs::write(path, b"not arrow").unwrap());
}

#[test]
fn gc_evicts_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let hashes: Vec<ContentHash> = (0..4)
        .map(|seed| store.put(&dense_table(1000, seed)).unwrap())
        .collect();
    // Last used: 2 oldest, then 0, 3, 1.
    let base = SystemTime::now() - Duration::from_secs(3600);
    for (i, rank) in [(2, 0), (0, 1), (3, 2), (1, 3)] {
        set_mtime(
            &store.object_path(&hashes[i]),
            base + Duration::from_secs(rank * 60),
        );
    }
    let size = |i: usize| {
        std::fs::metadata(store.object_path(&hashes[i]))
            .unwrap()
            .len()
    };
    let total = store.total_size().unwrap();
    let oldest = size(2);

    let report = store.gc(total - 1).unwrap();
    assert_eq!(report.removed, 1);
    assert_eq!(report.freed_bytes, oldest);
    assert!(!store.object_path(&hashes[2]).exists(), "oldest goes first");
    assert_eq!(report.remaining_bytes, store.total_size().unwrap());

    // A read makes object 0 the most recent, so 3 goes next.
    hit(store.get(&hashes[0]).unwrap());
    let keep = size(0) + size(1);
    let report = store.gc(keep).unwrap();
    assert_eq!(report.removed, 1);
    assert!(!store.object_path(&hashes[3]).exists());
    assert!(store.object_path(&hashes[0]).exists());
    assert!(store.object_path(&hashes[1]).exists());
    assert!(report.remaining_bytes <= keep);

    let nothing = store.gc(keep).unwrap();
    assert_eq!(
        nothing,
        GcReport {
            remaining_bytes: keep,
            ..GcReport::default()
        }
    );
}

#[test]
fn clear_removes_every_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    for seed in 0..3 {
        store.put(&mixed_table(100, seed)).unwrap();
    }
    let total = store.total_size().unwrap();
    let report = store.clear().unwrap();
    assert_eq!(report.removed, 3);
    assert_eq!(report.freed_bytes, total);
    assert_eq!(report.remaining_bytes, 0);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn gc_sweeps_stale_temp_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let tmp = store.root().join("tmp");
    let stale = tmp.join("dead-writer.tmp");
    let live = tmp.join("live-writer.tmp");
    std::fs::write(&stale, b"partial").unwrap();
    std::fs::write(&live, b"partial").unwrap();
    set_mtime(
        &stale,
        SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(1),
    );

    let report = store.gc(u64::MAX).unwrap();
    assert_eq!(report.stale_temp_files, 1);
    assert_eq!(report.freed_bytes, 7);
    assert!(!stale.exists());
    assert!(live.exists(), "a file still being written is left alone");
}

#[test]
fn open_fails_with_the_path_when_the_parent_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = expect_err(ObjectStore::open(file.join("ws")), "open under a file");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_msg(&err, &["not-a-dir", "cannot create the cache directory"]);
}

#[test]
fn failed_put_cleans_up_and_leaves_other_objects_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let kept = dense_table(1000, 1);
    let kept_hash = store.put(&kept).unwrap();

    // A regular file where the new object's shard directory belongs makes the
    // final rename fail, even for root, after the temporary file was written.
    let doomed = mixed_table(500, 9);
    let hash = hash_table(&doomed).unwrap();
    let shard = store.object_path(&hash).parent().unwrap().to_path_buf();
    assert!(!shard.exists(), "pick another seed: shards collide");
    std::fs::write(&shard, b"in the way").unwrap();

    let err = expect_err(store.put(&doomed), "put into a blocked shard");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_msg(
        &err,
        &[&hash.to_string(), "cannot store cache object", "free space"],
    );
    assert_eq!(tmp_files(&store), 0, "temporary file removed");
    assert_eq!(
        hit(store.get(&kept_hash).unwrap()).batches(),
        kept.batches()
    );
}

#[cfg(unix)]
#[test]
fn put_into_read_only_objects_dir_fails_cleanly() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let objects = dir.path().join("objects");
    std::fs::set_permissions(&objects, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permissions; the blocked-shard test covers that case.
    let probe = objects.join("probe");
    if std::fs::create_dir(&probe).is_ok() {
        std::fs::remove_dir(&probe).unwrap();
        return;
    }
    let result = store.put(&mixed_table(50, 3));
    std::fs::set_permissions(&objects, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = expect_err(result, "put into a read-only store");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(tmp_files(&store), 0, "temporary file removed");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn concurrent_puts_of_one_table_leave_one_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ObjectStore::open(dir.path()).unwrap());
    let table = Arc::new(mixed_table(20_000, 5));
    let barrier = Arc::new(Barrier::new(8));
    let hashes: Vec<ContentHash> = (0..8)
        .map(|_| {
            let (store, table, barrier) = (store.clone(), table.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.put(&table).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]));
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(tmp_files(&store), 0);
    assert_eq!(
        hit(store.get(&hashes[0]).unwrap()).batches(),
        table.batches()
    );
}

#[test]
fn readers_racing_clear_see_hits_or_misses_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ObjectStore::open(dir.path()).unwrap());
    let table = Arc::new(dense_table(20_000, 6));
    let hash = store.put(&table).unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, table) = (store.clone(), table.clone());
            std::thread::spawn(move || {
                for _ in 0..40 {
                    match store.get(&hash).unwrap() {
                        Lookup::Hit(t) => assert_eq!(t.batches(), table.batches()),
                        Lookup::Missing => {}
                        Lookup::Corrupt { reason, .. } => panic!("torn read: {reason}"),
                    }
                }
            })
        })
        .collect();
    for _ in 0..40 {
        store.clear().unwrap();
        store.put(&table).unwrap();
    }
    for r in readers {
        r.join().unwrap();
    }
}

#[test]
fn memory_tier_evicts_least_recently_used_by_bytes() {
    let tables: Vec<Table> = (0..4).map(|seed| dense_table(1000, seed)).collect();
    let hashes: Vec<ContentHash> = tables.iter().map(|t| hash_table(t).unwrap()).collect();
    let size = tables[0].memory_size();
    assert!(tables.iter().all(|t| t.memory_size() == size));

    let tier = MemoryTier::new(size * 5 / 2);
    assert!(tier.insert(hashes[0], tables[0].clone()));
    assert!(tier.insert(hashes[1], tables[1].clone()));
    assert!(tier.get(&hashes[0]).is_some(), "0 is now the most recent");
    assert!(tier.insert(hashes[2], tables[2].clone()));
    assert!(tier.get(&hashes[1]).is_none(), "1 was least recently used");
    assert_eq!(tier.len(), 2);
    assert_eq!(tier.bytes(), 2 * size);
    assert!(tier.bytes() <= tier.max_bytes());

    // Re-inserting a held table does not count it twice.
    assert!(tier.insert(hashes[2], tables[2].clone()));
    assert_eq!(tier.bytes(), 2 * size);

    let small = MemoryTier::new(size - 1);
    assert!(
        !small.insert(hashes[3], tables[3].clone()),
        "too big to hold"
    );
    assert!(small.is_empty());

    tier.clear();
    assert!(tier.is_empty());
    assert_eq!(tier.bytes(), 0);
    assert!(tier.get(&hashes[0]).is_none());
}

#[test]
fn the_background_writer_serves_queued_outputs_and_reports_a_failed_write_at_sync() {
    let dir = tempfile::tempdir().unwrap();
    // No memory tier: whatever is read back comes from the writer's queue or the disk.
    let ws = fuseflow::Workspace::open(dir.path())
        .unwrap()
        .with_memory_budget(0);
    let tables: Vec<Table> = (0..6).map(|i| dense_table(20_000 + i, i as u64)).collect();
    let hashes: Vec<_> = tables.iter().map(|t| ws.store(t).unwrap()).collect();
    for (t, h) in tables.iter().zip(&hashes) {
        assert!(ws.has(h), "queued or written, it is there");
        assert_eq!(ws.load(h).unwrap().found().unwrap().batches(), t.batches());
    }
    ws.sync().unwrap();
    for h in &hashes {
        assert!(ws.objects().object_path(h).is_file(), "written by sync");
    }

    // A write that fails (a file where the object's shard belongs) does not
    // fail `store`; `sync` reports it, naming the object, and nothing stored
    // before is touched.
    let doomed = mixed_table(500, 9);
    let hash = hash_table(&doomed).unwrap();
    let shard = ws
        .objects()
        .object_path(&hash)
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(!shard.exists(), "pick another seed: shards collide");
    std::fs::write(&shard, b"in the way").unwrap();
    assert_eq!(ws.store(&doomed).unwrap(), hash);
    let err = expect_err(ws.sync(), "sync after a failed write");
    assert_msg(
        &err,
        &[&hash.to_string(), "cannot store cache object", "free space"],
    );
    assert!(!ws.has(&hash), "a failed write leaves no object behind");
    ws.sync().unwrap();
    for h in &hashes {
        assert!(ws.objects().get(h).unwrap().found().unwrap().num_rows() > 0);
    }
}

/// An object file replaced by another object's (a swapped or misplaced
/// file, which verifies as a whole but not as this hash) is reported and
/// removed, never returned as the data asked for.
#[test]
fn an_object_swapped_for_another_is_reported_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let other = store.put(&dense_table(5_000, 3)).unwrap();
    let other_path = store.object_path(&other);
    check_corruption_detected(|path| {
        std::fs::copy(&other_path, path).unwrap();
    });
}
