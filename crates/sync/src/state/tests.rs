use super::*;

const WEEK: Duration = DEFAULT_RESEND_AFTER;

fn batch(key: &str, sent_at: i64) -> SentBatch {
    SentBatch {
        key: key.to_owned(),
        sent_at,
    }
}

fn encoded(state: &ProductState) -> Vec<u8> {
    let mut bytes = Vec::new();
    codec::encode(state, "cat-1", &mut bytes).expect("writes to memory");
    bytes
}

fn reloaded(state: &ProductState) -> ProductState {
    codec::decode(encoded(state).as_slice(), "cat-1").expect("a state written here reads back")
}

/// A state that sent `ids` in one batch at time 1000 and was saved and loaded again.
fn sent(ids: &[&str]) -> ProductState {
    let mut state = ProductState::new();
    for (n, id) in ids.iter().enumerate() {
        state.record_sent(id, n as u64 + 1, false, false, &batch("b1", 1000));
    }
    reloaded(&state)
}

#[test]
fn a_product_is_unchanged_only_with_the_same_fingerprint_and_within_resend_after() {
    let state = sent(&["a", "b"]);
    assert!(state.is_unchanged("a", 1, 1000, WEEK));
    assert!(
        !state.is_unchanged("a", 2, 1000, WEEK),
        "another fingerprint"
    );
    assert!(!state.is_unchanged("c", 1, 1000, WEEK), "never sent");
    let a_week_later = 1000 + WEEK.as_secs() as i64;
    assert!(
        !state.is_unchanged("a", 1, a_week_later, WEEK),
        "due for a resend"
    );
    assert_eq!(state.summary(a_week_later, WEEK).due_for_resend, 2);
}

#[test]
fn refused_products_are_never_unchanged() {
    let mut state = ProductState::new();
    state.record_sent("a", 1, false, true, &batch("b1", 1000));
    state.record_sent("b", 2, false, false, &batch("b1", 1000));
    let mut state = reloaded(&state);
    assert!(!state.is_unchanged("a", 1, 1000, WEEK));
    assert!(state.is_unchanged("b", 2, 1000, WEEK));
    state.fold_verdicts(&[BatchVerdict {
        batch_key: "b1".into(),
        finished: true,
        refused_ids: vec!["b".into()],
        complete: true,
    }]);
    assert!(!state.is_unchanged("b", 2, 1000, WEEK));
    assert_eq!(state.summary(1000, WEEK).refused, 2);
}

#[test]
fn verdicts_confirm_refuse_and_forget_only_their_own_batch() {
    let mut state = ProductState::new();
    state.record_sent("kept", 1, false, false, &batch("b1", 10));
    state.record_sent("bad", 2, false, false, &batch("b1", 10));
    state.record_sent("gone", 3, true, false, &batch("b1", 10));
    state.record_sent("later", 4, false, false, &batch("b2", 20));
    let mut state = reloaded(&state);
    let verdict = BatchVerdict {
        batch_key: "b1".into(),
        finished: true,
        refused_ids: vec!["bad".into()],
        complete: true,
    };
    state.fold_verdicts(std::slice::from_ref(&verdict));
    let standing = |state: &ProductState, id: &str| state.entry(id).map(|e| e.standing);
    assert_eq!(standing(&state, "kept"), Some(Standing::Confirmed));
    assert_eq!(standing(&state, "bad"), Some(Standing::Refused));
    assert_eq!(standing(&state, "later"), Some(Standing::Sent));
    let state = reloaded(&state);
    assert_eq!(
        standing(&state, "gone"),
        None,
        "a confirmed delete is forgotten"
    );
    // "kept" is sent again in b3; b1's verdict folded a second time must not touch it.
    let mut state = state;
    state.record_sent("kept", 9, false, false, &batch("b3", 30));
    let mut state = reloaded(&state);
    state.fold_verdicts(&[verdict]);
    assert_eq!(standing(&state, "kept"), Some(Standing::Sent));
}

#[test]
fn an_incomplete_or_failed_verdict_refuses_the_whole_batch() {
    for (finished, complete) in [(true, false), (false, true)] {
        let mut state = sent(&["a", "b"]);
        state.fold_verdicts(&[BatchVerdict {
            batch_key: "b1".into(),
            finished,
            refused_ids: vec![],
            complete,
        }]);
        assert_eq!(
            state.summary(1000, WEEK).refused,
            2,
            "{finished} {complete}"
        );
    }
}

#[test]
fn a_delete_that_did_not_apply_is_deleted_again_by_the_next_snapshot() {
    let mut state = sent(&["a", "b"]);
    state.record_sent("a", 7, true, false, &batch("b2", 2000));
    let mut state = reloaded(&state);
    state.start_marks("run-1");
    assert_eq!(
        state.absent().collect::<Vec<_>>(),
        ["b"],
        "a delete is on its way"
    );
    state.fold_verdicts(&[BatchVerdict {
        batch_key: "b2".into(),
        finished: false,
        refused_ids: vec![],
        complete: true,
    }]);
    assert_eq!(state.absent().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn snapshot_marks_find_the_absent_and_survive_a_save_of_the_same_run() {
    let mut state = sent(&["a", "b", "c"]);
    state.start_marks("run-1");
    state.mark_seen("b");
    state.record_sent("new", 5, false, false, &batch("b2", 2000));
    state.set_marks_progress(4);
    let state = reloaded(&state);
    assert!(state.marks_hold_for("run-1", 4));
    assert!(!state.marks_hold_for("run-1", 5));
    assert!(!state.marks_hold_for("run-2", 4));
    assert_eq!(state.absent().collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(state.known(), 4);
}

#[test]
fn the_state_round_trips_in_id_order_with_the_last_send_of_a_repeated_id() {
    let mut state = sent(&["m", "c"]);
    state.record_sent("z", 1, false, false, &batch("b2", 2000));
    state.record_sent("a", 2, false, false, &batch("b2", 2000));
    state.record_sent("a", 3, false, false, &batch("b3", 3000));
    state.record_sent("é", 4, false, false, &batch("b3", 3000));
    let state = reloaded(&state);
    let ids: Vec<&str> = (0..state.len()).map(|i| state.id(i)).collect();
    assert_eq!(ids, ["a", "c", "m", "z", "é"]);
    let a = state.entry("a").expect("remembered");
    assert_eq!(a.fingerprint, format!("{:016x}", 3));
    assert_eq!(a.batch, Some(batch("b3", 3000)));
    // Batches no entry names any more are dropped.
    assert_eq!(state.batches.len(), 3);
}

#[test]
fn damage_another_version_and_another_catalog_are_refused() {
    let state = sent(&["a", "b", "c"]);
    let bytes = encoded(&state);
    for at in [0, MAGIC_LEN, bytes.len() / 2, bytes.len() - 1] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x41;
        assert!(
            codec::decode(damaged.as_slice(), "cat-1").is_err(),
            "a flipped byte at {at} went unnoticed"
        );
    }
    for cut in [0, 5, bytes.len() - 3] {
        assert!(codec::decode(&bytes[..cut], "cat-1").is_err());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(codec::decode(longer.as_slice(), "cat-1").is_err());
    let mut version = bytes.clone();
    version[MAGIC_LEN] = FORMAT_VERSION + 1;
    let error = codec::decode(version.as_slice(), "cat-1").expect_err("another version");
    assert!(error.to_string().contains("format version"), "{error}");
    let error = codec::decode(bytes.as_slice(), "cat-2").expect_err("another catalog");
    assert!(error.to_string().contains("cat-1"), "{error}");
}

const MAGIC_LEN: usize = "catalog-sync state\n".len();

proptest::proptest! {
    #[test]
    fn any_bytes_decode_to_an_error_or_a_state_never_a_panic(bytes: Vec<u8>) {
        let _ = codec::decode(bytes.as_slice(), "cat-1");
    }

    #[test]
    fn any_sends_round_trip(sends in proptest::collection::vec(("[a-e]{1,3}|é|ü", 0u64..4, proptest::bool::ANY, 0usize..3), 0..40)) {
        let mut state = ProductState::new();
        let mut last = std::collections::BTreeMap::new();
        for (id, fingerprint, delete, b) in &sends {
            let key = format!("b{b}");
            state.record_sent(id, *fingerprint, *delete, false, &batch(&key, *b as i64));
            last.insert(id.clone(), (*fingerprint, *delete, key));
        }
        let state = reloaded(&state);
        proptest::prop_assert_eq!(state.len(), last.len());
        for (id, (fingerprint, delete, key)) in last {
            let entry = state.entry(&id).expect("remembered");
            proptest::prop_assert_eq!(entry.fingerprint, format!("{fingerprint:016x}"));
            let standing = if delete { Standing::Deleting } else { Standing::Sent };
            proptest::prop_assert_eq!(entry.standing, standing);
            proptest::prop_assert_eq!(entry.batch.map(|b| b.key), Some(key));
        }
    }
}
