//! Wycheproof's JSON Web Signature and JSON Web Key vectors (vendored in
//! `tests/vectors/wycheproof/`, see its README.md) run over the gateway's
//! JWKS loader ([`KeySet::from_jwks_json`]) and signature check
//! ([`verify_signature`]).
//!
//! Every vector labelled invalid must be refused. Every vector labelled valid
//! must verify, unless [`STRICTER`] lists it with the reason the gateway
//! refuses it on purpose; an entry that is in fact accepted is stale and
//! fails the test too. [`MISLABELLED`] holds the vectors whose label
//! contradicts a byte-identical vector.
//!
//! `WYCHEPROOF_VERBOSE=1 cargo test --test wycheproof -- --nocapture` prints
//! every vector's outcome.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::{json, Value};
use sessiongate::token::keys::{KeySet, SkippedKey};
use sessiongate::token::verify_signature;

const SIGNATURES: &str = "json_web_signature_test.json";
const KEYS: &str = "json_web_key_test.json";

const FILES: [(&str, &str); 2] = [
    (
        SIGNATURES,
        include_str!("vectors/wycheproof/json_web_signature_test.json"),
    ),
    (
        KEYS,
        include_str!("vectors/wycheproof/json_web_key_test.json"),
    ),
];

/// Vectors labelled valid that the gateway refuses on purpose: (file, tcId,
/// why). Exact: an entry that verifies fails the test.
const STRICTER: &[(&str, u32, &str)] = &[
    (
        SIGNATURES,
        346,
        "RFC 7520 figure 20: a PS384 token verified with a JWK whose alg is PS256; \
         a key verifies only the algorithm it declares (RFC 7517 4.4), never a sibling",
    ),
    (
        SIGNATURES,
        347,
        "RFC 7520 figure 27: ES512 on P-521 is not supported (ES256 on P-256 and \
         ES384 on P-384 only); the JWK's alg ES521 is not a signature algorithm either",
    ),
    (
        SIGNATURES,
        350,
        "as 346 (key with key_ops [verify]): PS384 token, PS256 key",
    ),
    (
        SIGNATURES,
        351,
        "as 347 (key with key_ops [verify]): ES512 / P-521 is not supported",
    ),
    (
        SIGNATURES,
        372,
        "'?' inside the header part: the gateway refuses any byte outside base64url \
         and '.' (RFC 4648 3.3); a lenient decoder makes a second spelling of one signed \
         token, and a token without sid/jti is identified by the SHA-256 of its bytes, \
         so a respelling would be a new, unrevoked session",
    ),
    (SIGNATURES, 373, "'?' inside the payload part: as 372"),
];

/// Vectors labelled invalid that are byte for byte a vector labelled valid
/// of the same group (same key set, same `jws`), so no verifier can satisfy
/// both labels (C2SP/wycheproof issue 236): (file, tcId, the valid tcId,
/// why). They are held to their valid twin's verdict; an entry whose twin no
/// longer matches is stale and fails the test, and the vector is then judged
/// by its label.
const MISLABELLED: &[(&str, u32, u32, &str)] = &[
    (
        SIGNATURES,
        367,
        357,
        "invalidBase64Padding carries no padding: it is ValidMac's canonical token",
    ),
    (
        SIGNATURES,
        370,
        357,
        "invalidBase64PaddingInPayload carries no padding: it is ValidMac's canonical token",
    ),
];

/// JWK members that only a private key has; a verifier only gets public keys.
const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Accepted,
    /// Why: the key set or the verifier's error.
    Refused(String),
    Panicked(String),
}

struct Record {
    file: &'static str,
    group: usize,
    tc_id: u32,
    comment: String,
    flags: Vec<String>,
    result: String,
    token: Vec<u8>,
    outcome: Outcome,
}

impl Record {
    fn describe(&self) -> String {
        format!(
            "{} tcId {} {:?} flags {:?} (labelled {})",
            self.file, self.tc_id, self.comment, self.flags, self.result
        )
    }
}

/// The JWKS text a verifier of this group is given: `public` when present,
/// else `private` with its private members removed (HMAC keys keep `k`, their
/// only material); a single JWK is wrapped into `{"keys": [jwk]}`.
fn key_set_text(group: &Value) -> Result<String, String> {
    let (jwk, from_private) = match (group.get("public"), group.get("private")) {
        (Some(public), _) => (public.clone(), false),
        (None, Some(private)) => (private.clone(), true),
        (None, None) => return Err("group has neither public nor private key".into()),
    };
    let mut set = if jwk.get("keys").is_some() {
        jwk
    } else {
        json!({ "keys": [jwk] })
    };
    if from_private {
        if let Some(keys) = set.get_mut("keys").and_then(Value::as_array_mut) {
            for key in keys {
                if key.get("kty").and_then(Value::as_str) == Some("oct") {
                    continue;
                }
                if let Some(members) = key.as_object_mut() {
                    for m in PRIVATE_MEMBERS {
                        members.remove(m);
                    }
                }
            }
        }
    }
    Ok(set.to_string())
}

fn describe_skipped(skipped: &[SkippedKey]) -> String {
    if skipped.is_empty() {
        return "none skipped".into();
    }
    skipped
        .iter()
        .map(|s| format!("kid {:?}: {}", s.kid, s.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".into())
}

/// The group's key set, or why every test of the group counts as refused.
fn load_group(group: &Value) -> Result<KeySet, Outcome> {
    let text = key_set_text(group).map_err(Outcome::Refused)?;
    match catch_unwind(AssertUnwindSafe(|| KeySet::from_jwks_json(&text, None))) {
        Err(p) => Err(Outcome::Panicked(format!(
            "loader panicked: {}",
            panic_text(p.as_ref())
        ))),
        Ok(Err(e)) => Err(Outcome::Refused(format!("key set refused: {e}"))),
        Ok(Ok(load)) if load.keys.is_empty() => Err(Outcome::Refused(format!(
            "no usable key ({})",
            describe_skipped(&load.skipped)
        ))),
        Ok(Ok(load)) => Ok(load.keys),
    }
}

/// The bytes a client would send: a compact JWS as is; a JSON-serialized
/// one (an object, not a string) as its JSON text, which must be refused.
fn token_bytes(jws: &Value) -> Vec<u8> {
    match jws {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

fn verify(keys: &KeySet, token: &[u8]) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| verify_signature(keys, token))) {
        Ok(Ok(())) => Outcome::Accepted,
        Ok(Err(e)) => Outcome::Refused(format!("{e:?}: {e}")),
        Err(p) => Outcome::Panicked(format!("verifier panicked: {}", panic_text(p.as_ref()))),
    }
}

/// Runs every vector of one file; counts mismatches with `numberOfTests`.
fn run_file(file: &'static str, text: &str, failures: &mut Vec<String>) -> Vec<Record> {
    let doc: Value = serde_json::from_str(text).expect("vector file is JSON");
    let groups = doc["testGroups"].as_array().expect("testGroups");
    let mut records = Vec::new();
    for (gi, group) in groups.iter().enumerate() {
        let keys = load_group(group);
        for test in group["tests"].as_array().expect("tests") {
            let token = token_bytes(&test["jws"]);
            let outcome = match &keys {
                Ok(keys) => verify(keys, &token),
                Err(why) => why.clone(),
            };
            records.push(Record {
                file,
                group: gi,
                tc_id: test["tcId"].as_u64().expect("tcId") as u32,
                comment: test["comment"].as_str().unwrap_or("").to_string(),
                flags: test["flags"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
                result: test["result"].as_str().unwrap_or("").to_string(),
                token,
                outcome,
            });
        }
    }
    let declared = doc["numberOfTests"].as_u64();
    if declared != Some(records.len() as u64) {
        failures.push(format!(
            "{file}: numberOfTests is {declared:?}, found {} tests",
            records.len()
        ));
    }
    records
}

/// Whether a MISLABELLED entry still describes the vectors: its twin is in
/// the same file and group, labelled valid, with the same token.
fn twin_matches(records: &[Record], r: &Record, twin_id: u32) -> bool {
    r.result == "invalid"
        && records.iter().any(|t| {
            t.file == r.file
                && t.tc_id == twin_id
                && t.group == r.group
                && t.result == "valid"
                && t.token == r.token
        })
}

#[test]
fn wycheproof_jws_and_jwk_vectors() {
    let mut failures = Vec::new();
    let mut records = Vec::new();
    for (file, text) in FILES {
        records.extend(run_file(file, text, &mut failures));
    }

    let mut seen = HashSet::new();
    for r in &records {
        if !seen.insert((r.file, r.tc_id)) {
            failures.push(format!("{}: duplicate tcId {}", r.file, r.tc_id));
        }
    }
    for (file, tc_id, _) in STRICTER {
        if !seen.contains(&(*file, *tc_id)) {
            failures.push(format!("STRICTER names no vector: {file} tcId {tc_id}"));
        }
    }
    for (file, tc_id, _, _) in MISLABELLED {
        if !seen.contains(&(*file, *tc_id)) {
            failures.push(format!("MISLABELLED names no vector: {file} tcId {tc_id}"));
        }
    }

    let (mut valid_accepted, mut invalid_refused, mut stricter, mut mislabelled) = (0, 0, 0, 0);
    let mut acceptable = Vec::new();
    for r in &records {
        let in_stricter = STRICTER
            .iter()
            .find(|(f, id, _)| *f == r.file && *id == r.tc_id);
        let in_mislabelled = MISLABELLED
            .iter()
            .find(|(f, id, _, _)| *f == r.file && *id == r.tc_id);
        if let Outcome::Panicked(why) = &r.outcome {
            failures.push(format!("{}: {why}", r.describe()));
            continue;
        }
        let accepted = r.outcome == Outcome::Accepted;
        match r.result.as_str() {
            "valid" => match (accepted, in_stricter) {
                (true, None) => valid_accepted += 1,
                (false, Some((_, _, why))) => {
                    stricter += 1;
                    println!("stricter: {} tcId {}: {why}", r.file, r.tc_id);
                }
                (true, Some(_)) => failures.push(format!(
                    "{}: listed in STRICTER but accepted (stale entry)",
                    r.describe()
                )),
                (false, None) => failures.push(format!(
                    "{}: valid vector refused: {:?}",
                    r.describe(),
                    r.outcome
                )),
            },
            "invalid" => {
                if in_stricter.is_some() {
                    failures.push(format!(
                        "{}: STRICTER is for valid vectors only",
                        r.describe()
                    ));
                }
                if let Some((_, _, twin, why)) = in_mislabelled {
                    if twin_matches(&records, r, *twin) {
                        // Judged with its valid twin, which has the same input.
                        mislabelled += 1;
                        println!(
                            "mislabelled: {} tcId {} (= tcId {twin}, {:?}): {why}",
                            r.file, r.tc_id, r.outcome
                        );
                        continue;
                    }
                    failures.push(format!(
                        "{}: MISLABELLED entry is stale: tcId {twin} is no longer a valid twin",
                        r.describe()
                    ));
                }
                if accepted {
                    failures.push(format!("{}: invalid vector ACCEPTED", r.describe()));
                } else {
                    invalid_refused += 1;
                }
            }
            "acceptable" => {
                if in_stricter.is_some() {
                    failures.push(format!(
                        "{}: STRICTER is for valid vectors only",
                        r.describe()
                    ));
                }
                acceptable.push(format!("{}: {:?}", r.describe(), r.outcome));
            }
            other => failures.push(format!("{}: unknown result {other:?}", r.describe())),
        }
        if in_mislabelled.is_some() && r.result != "invalid" {
            failures.push(format!(
                "{}: MISLABELLED is for invalid vectors only",
                r.describe()
            ));
        }
    }

    if std::env::var_os("WYCHEPROOF_VERBOSE").is_some() {
        for r in &records {
            println!("{}: {:?}", r.describe(), r.outcome);
        }
    }
    for line in &acceptable {
        println!("acceptable: {line}");
    }
    println!(
        "wycheproof: {} vectors, {valid_accepted} valid accepted, {invalid_refused} invalid refused, \
         {stricter} stricter, {mislabelled} mislabelled, {} acceptable",
        records.len(),
        acceptable.len()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} Wycheproof failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The key set built for each group is what a verifier would be given: no
/// private members, and a JWKS document.
#[test]
fn key_sets_hold_public_keys_only() {
    for (file, text) in FILES {
        let doc: Value = serde_json::from_str(text).unwrap();
        for group in doc["testGroups"].as_array().unwrap() {
            let set: Value = serde_json::from_str(&key_set_text(group).unwrap()).unwrap();
            let keys = set["keys"].as_array().expect("a JWKS document");
            assert!(!keys.is_empty(), "{file} {}", group["comment"]);
            for key in keys {
                for m in PRIVATE_MEMBERS {
                    assert!(
                        key.get(m).is_none(),
                        "{file} {}: private member {m} left in",
                        group["comment"]
                    );
                }
            }
        }
    }
}
