//! The DynamoDB fake: tables made on first use, conditions, updates, queries and
//! all-or-nothing transactions, evaluated with DynamoDB's meaning.
//!
//! * A table is created the first time a [`Table`] names it, with `Table.key` as its
//!   (string) partition key; naming it later with another key is a validation error.
//! * Numbers (`N`, `NS`) are compared numerically and stored in canonical text, as
//!   DynamoDB does (`"1.50"` is stored as `"1.5"`, `"007"` as `"7"`). Up to 38
//!   significant digits and scale 38 are supported.
//! * Scan returns items in insertion order (an overwrite keeps the item's place).
//! * Query filters on the hash attribute and the range condition. With a range
//!   condition, items are sorted ascending by the range attribute (numbers numerically,
//!   strings by bytes), ties in insertion order; items lacking an attribute of the
//!   query do not match (GSIs are sparse). Without one, insertion order. A Query on the
//!   table itself (no index) must use the table's key as hash attribute.
//! * `consistent` is ignored: every read is strongly consistent.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{aws_err, lock, ops, Env};
use crate::error::{AwsError, AwsErrorKind};
use crate::managers::dynamodb::{
    AttributeValue, Change, Cond, Dynamo, Item, Query, RangeCond, Table, TransactOp, Update,
};

const SERVICE: &str = "dynamodb";
const MAX_SCALE: u32 = 38;

// ---------------------------------------------------------------------------------
// Numbers

/// An exact decimal: `mant / 10^scale`, normalized (no trailing zeros in the fraction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Num {
    mant: i128,
    scale: u32,
}

impl Num {
    fn parse(s: &str) -> Option<Num> {
        let (neg, rest) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (body, exp) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut mant: i128 = 0;
        for d in int.bytes().chain(frac.bytes()).skip_while(|b| *b == b'0') {
            mant = mant.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
        }
        if mant == 0 {
            return Some(Num { mant: 0, scale: 0 });
        }
        let mut scale = i64::try_from(frac.len()).ok()? - i64::from(exp);
        while scale > 0 && mant % 10 == 0 {
            mant /= 10;
            scale -= 1;
        }
        if scale < 0 {
            mant = mant.checked_mul(10i128.checked_pow(u32::try_from(-scale).ok()?)?)?;
            scale = 0;
        }
        let scale = u32::try_from(scale).ok().filter(|s| *s <= MAX_SCALE)?;
        Some(Num {
            mant: if neg { -mant } else { mant },
            scale,
        })
    }

    fn normalized(mut self) -> Num {
        while self.scale > 0 && self.mant % 10 == 0 {
            self.mant /= 10;
            self.scale -= 1;
        }
        if self.mant == 0 {
            self.scale = 0;
        }
        self
    }

    fn pow10(scale: u32) -> i128 {
        // scale <= 38, and 10^38 < i128::MAX.
        10i128.pow(scale)
    }

    fn cmp(&self, other: &Num) -> Ordering {
        let (pa, pb) = (Num::pow10(self.scale), Num::pow10(other.scale));
        let (ia, ib) = (self.mant.div_euclid(pa), other.mant.div_euclid(pb));
        if ia != ib {
            return ia.cmp(&ib);
        }
        // Both fractions are in [0, 1): compare them at the larger scale, which fits.
        let s = self.scale.max(other.scale);
        let fa = self.mant.rem_euclid(pa) * Num::pow10(s - self.scale);
        let fb = other.mant.rem_euclid(pb) * Num::pow10(s - other.scale);
        fa.cmp(&fb)
    }

    fn checked_add(&self, other: &Num) -> Option<Num> {
        let s = self.scale.max(other.scale);
        let a = self.mant.checked_mul(Num::pow10(s - self.scale))?;
        let b = other.mant.checked_mul(Num::pow10(s - other.scale))?;
        Some(
            Num {
                mant: a.checked_add(b)?,
                scale: s,
            }
            .normalized(),
        )
    }

    fn text(&self) -> String {
        if self.scale == 0 {
            return self.mant.to_string();
        }
        let sign = if self.mant < 0 { "-" } else { "" };
        let abs = self.mant.unsigned_abs();
        let p = 10u128.pow(self.scale);
        format!("{sign}{}.{:0width$}", abs / p, abs % p, width = self.scale as usize)
    }
}

// ---------------------------------------------------------------------------------
// Attribute values

fn bad_number(n: &str) -> String {
    format!("The parameter cannot be converted to a numeric value: {n}")
}

fn canon_number(n: &str) -> Result<String, String> {
    Num::parse(n).map(|v| v.text()).ok_or_else(|| bad_number(n))
}

/// Validates a value and puts its numbers in canonical text.
fn canon(v: &AttributeValue) -> Result<AttributeValue, String> {
    Ok(match v {
        AttributeValue::N(n) => AttributeValue::N(canon_number(n)?),
        AttributeValue::Ns(ns) => {
            if ns.is_empty() {
                return Err("An number set may not be empty".into());
            }
            let mut out: Vec<String> = Vec::new();
            for n in ns {
                let c = canon_number(n)?;
                if out.contains(&c) {
                    return Err("Input collection contains duplicates".into());
                }
                out.push(c);
            }
            AttributeValue::Ns(out)
        }
        AttributeValue::Ss(ss) => {
            if ss.is_empty() {
                return Err("An string set may not be empty".into());
            }
            if ss.iter().enumerate().any(|(i, s)| ss[..i].contains(s)) {
                return Err("Input collection contains duplicates".into());
            }
            v.clone()
        }
        AttributeValue::Bs(bs) => {
            if bs.is_empty() {
                return Err("Binary sets should not be empty".into());
            }
            v.clone()
        }
        AttributeValue::L(l) => AttributeValue::L(l.iter().map(canon).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), canon(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        AttributeValue::S(_) | AttributeValue::B(_) | AttributeValue::Bool(_) | AttributeValue::Null(_) => v.clone(),
        _ => return Err("Unsupported attribute value type".into()),
    })
}

fn num_eq(a: &str, b: &str) -> bool {
    match (Num::parse(a), Num::parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y) == Ordering::Equal,
        _ => a == b,
    }
}

fn set_eq<T>(a: &[T], b: &[T], eq: impl Fn(&T, &T) -> bool) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| eq(x, y)))
}

/// DynamoDB equality: numbers numerically, sets as sets, documents recursively.
fn av_eq(a: &AttributeValue, b: &AttributeValue) -> bool {
    use AttributeValue as A;
    match (a, b) {
        (A::N(x), A::N(y)) => num_eq(x, y),
        (A::Ns(x), A::Ns(y)) => set_eq(x, y, |p, q| num_eq(p, q)),
        (A::Ss(x), A::Ss(y)) => set_eq(x, y, |p, q| p == q),
        (A::Bs(x), A::Bs(y)) => set_eq(x, y, |p, q| p == q),
        (A::L(x), A::L(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| av_eq(p, q)),
        (A::M(x), A::M(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| av_eq(v, w))),
        _ => a == b,
    }
}

/// DynamoDB ordering: numbers numerically, strings and binaries by bytes; other or
/// mixed types are not comparable.
fn av_cmp(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    use AttributeValue as A;
    match (a, b) {
        (A::N(x), A::N(y)) => Some(Num::parse(x)?.cmp(&Num::parse(y)?)),
        (A::S(x), A::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (A::B(x), A::B(y)) => Some(x.as_ref().cmp(y.as_ref())),
        _ => None,
    }
}

fn eval(cond: &Cond, item: Option<&Item>) -> bool {
    let get = |attr: &str| item.and_then(|i| i.get(attr));
    match cond {
        Cond::Always => true,
        Cond::Exists(a) => get(a).is_some(),
        Cond::NotExists(a) => get(a).is_none(),
        Cond::Eq(a, v) => get(a).is_some_and(|x| av_eq(x, v)),
        Cond::Ne(a, v) => !get(a).is_some_and(|x| av_eq(x, v)),
        Cond::In(a, vs) => get(a).is_some_and(|x| vs.iter().any(|v| av_eq(x, v))),
        Cond::Lt(a, v) => get(a).is_some_and(|x| av_cmp(x, v) == Some(Ordering::Less)),
        Cond::And(cs) => cs.iter().all(|c| eval(c, item)),
        Cond::Or(cs) => cs.iter().any(|c| eval(c, item)),
    }
}

fn validate_cond(cond: &Cond) -> Result<(), String> {
    match cond {
        Cond::Always => Ok(()),
        Cond::Exists(a) | Cond::NotExists(a) => nonempty_attr(a),
        Cond::Eq(a, v) | Cond::Ne(a, v) | Cond::Lt(a, v) => {
            nonempty_attr(a)?;
            canon(v).map(|_| ())
        }
        Cond::In(a, vs) => {
            nonempty_attr(a)?;
            if vs.is_empty() || vs.len() > 100 {
                return Err("IN takes 1 to 100 values".into());
            }
            vs.iter().try_for_each(|v| canon(v).map(|_| ()))
        }
        Cond::And(cs) | Cond::Or(cs) => {
            if cs.is_empty() {
                return Err("Invalid ConditionExpression: empty AND/OR".into());
            }
            cs.iter().try_for_each(validate_cond)
        }
    }
}

fn nonempty_attr(a: &str) -> Result<(), String> {
    if a.is_empty() {
        Err("Empty attribute name".into())
    } else {
        Ok(())
    }
}

fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        Err("One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value.".into())
    } else {
        Ok(())
    }
}

/// The key of an item to write, and the item with canonical numbers.
fn prepare_item(key_attr: &str, item: &Item) -> Result<(String, Item), String> {
    let key = match item.get(key_attr) {
        Some(AttributeValue::S(k)) => k.clone(),
        Some(_) => return Err(format!("Type mismatch for key {key_attr}: expected S")),
        None => return Err(format!("Missing the key {key_attr} in the item")),
    };
    validate_key(&key)?;
    let item = item
        .iter()
        .map(|(k, v)| {
            nonempty_attr(k)?;
            Ok((k.clone(), canon(v)?))
        })
        .collect::<Result<Item, String>>()?;
    Ok((key, item))
}

fn validate_update(key_attr: &str, update: &Update) -> Result<(), String> {
    for (i, (attr, change)) in update.changes.iter().enumerate() {
        nonempty_attr(attr)?;
        if attr == key_attr {
            return Err(format!(
                "One or more parameter values were invalid: Cannot update attribute {attr}. This attribute is part of the key"
            ));
        }
        if update.changes[..i].iter().any(|(a, _)| a == attr) {
            return Err(format!(
                "Two document paths overlap with each other: [{attr}], [{attr}]"
            ));
        }
        match change {
            Change::Set(v) => {
                canon(v)?;
            }
            Change::Remove => {}
            Change::Add(v) => {
                if !matches!(
                    v,
                    AttributeValue::N(_) | AttributeValue::Ns(_) | AttributeValue::Ss(_) | AttributeValue::Bs(_)
                ) {
                    return Err("Incorrect operand type for operator or function; operator: ADD".into());
                }
                canon(v)?;
            }
        }
    }
    Ok(())
}

fn union<T: Clone>(cur: &[T], new: &[T], eq: impl Fn(&T, &T) -> bool) -> Vec<T> {
    let mut out = cur.to_vec();
    for v in new {
        if !out.iter().any(|o| eq(o, v)) {
            out.push(v.clone());
        }
    }
    out
}

/// The item after `update` (which [`validate_update`] accepted).
fn apply_update(key_attr: &str, key: &str, existing: Option<&Item>, update: &Update) -> Result<Item, String> {
    use AttributeValue as A;
    let mut item = existing.cloned().unwrap_or_else(|| {
        let mut i = Item::new();
        i.insert(key_attr.to_string(), A::S(key.to_string()));
        i
    });
    let mismatch = || "An operand in the update expression has an incorrect data type".to_string();
    for (attr, change) in &update.changes {
        match change {
            Change::Set(v) => {
                item.insert(attr.clone(), canon(v)?);
            }
            Change::Remove => {
                item.remove(attr);
            }
            Change::Add(v) => {
                let v = canon(v)?;
                let new = match (item.get(attr), &v) {
                    (None, _) => v.clone(),
                    (Some(A::N(cur)), A::N(n)) => {
                        let sum = Num::parse(cur)
                            .zip(Num::parse(n))
                            .and_then(|(a, b)| a.checked_add(&b))
                            .ok_or_else(|| bad_number(cur))?;
                        A::N(sum.text())
                    }
                    (Some(A::Ns(cur)), A::Ns(n)) => A::Ns(union(cur, n, |a, b| num_eq(a, b))),
                    (Some(A::Ss(cur)), A::Ss(n)) => A::Ss(union(cur, n, |a, b| a == b)),
                    (Some(A::Bs(cur)), A::Bs(n)) => A::Bs(union(cur, n, |a, b| a == b)),
                    _ => return Err(mismatch()),
                };
                item.insert(attr.clone(), new);
            }
        }
    }
    Ok(item)
}

fn range_matches(v: &AttributeValue, cond: &RangeCond) -> bool {
    use Ordering::*;
    match cond {
        RangeCond::Between(a, b) => {
            matches!(av_cmp(v, a), Some(Greater | Equal)) && matches!(av_cmp(v, b), Some(Less | Equal))
        }
        RangeCond::Lt(a) => av_cmp(v, a) == Some(Less),
        RangeCond::Ge(a) => matches!(av_cmp(v, a), Some(Greater | Equal)),
    }
}

// ---------------------------------------------------------------------------------
// The store

struct FakeTable {
    key: String,
    /// key → (insertion sequence, item)
    items: HashMap<String, (u64, Item)>,
}

impl FakeTable {
    fn ordered(&self) -> Vec<&Item> {
        let mut v: Vec<&(u64, Item)> = self.items.values().collect();
        v.sort_by_key(|(seq, _)| *seq);
        v.into_iter().map(|(_, i)| i).collect()
    }

    fn get(&self, key: &str) -> Option<&Item> {
        self.items.get(key).map(|(_, i)| i)
    }
}

#[derive(Default)]
struct State {
    tables: HashMap<String, FakeTable>,
    seq: u64,
    /// Indexes that lag: a query on one sees the table as it was when the lag began.
    lagging: HashMap<String, Vec<Item>>,
    /// Items read so far: one per item a GetItem, Scan or Query returned.
    items_read: u64,
}

impl State {
    fn table(&mut self, name: &str, key: &str) -> Result<&mut FakeTable, String> {
        if name.is_empty() || name.len() > 255 {
            return Err(format!("Invalid table name: {name}"));
        }
        let t = self.tables.entry(name.to_string()).or_insert_with(|| FakeTable {
            key: key.to_string(),
            items: HashMap::new(),
        });
        if t.key != key {
            return Err(format!(
                "The provided key element does not match the schema (table {name} is keyed by {}, not {key})",
                t.key
            ));
        }
        Ok(t)
    }

    fn write(&mut self, table: &str, key: String, item: Option<Item>) {
        self.seq += 1;
        let seq = self.seq;
        let Some(t) = self.tables.get_mut(table) else {
            return;
        };
        match item {
            None => {
                t.items.remove(&key);
            }
            Some(item) => match t.items.get_mut(&key) {
                Some(e) => e.1 = item,
                None => {
                    t.items.insert(key, (seq, item));
                }
            },
        }
    }
}

/// The in-memory DynamoDB.
pub struct FakeDynamo {
    env: Arc<Env>,
    state: Mutex<State>,
}

fn invalid(operation: &'static str, message: String) -> AwsError {
    aws_err(
        SERVICE,
        operation,
        AwsErrorKind::Invalid,
        "ValidationException",
        message,
    )
}

fn condition_failed(operation: &'static str) -> AwsError {
    aws_err(
        SERVICE,
        operation,
        AwsErrorKind::ConditionFailed,
        "ConditionalCheckFailedException",
        "The conditional request failed",
    )
}

impl FakeDynamo {
    pub const SERVICE: &'static str = SERVICE;
    pub const GET_ITEM: &'static str = ops::GET_ITEM;
    pub const PUT_ITEM: &'static str = ops::PUT_ITEM;
    pub const UPDATE_ITEM: &'static str = ops::UPDATE_ITEM;
    pub const DELETE_ITEM: &'static str = ops::DELETE_ITEM;
    pub const SCAN: &'static str = ops::SCAN;
    pub const QUERY: &'static str = ops::QUERY;
    pub const TRANSACT_WRITE_ITEMS: &'static str = ops::TRANSACT_WRITE_ITEMS;

    /// A standalone fake reporting to `faults`.
    pub fn new(faults: Arc<super::Faults>) -> Self {
        FakeDynamo::with_env(Env::new(faults))
    }

    pub(crate) fn with_env(env: Arc<Env>) -> Self {
        FakeDynamo {
            env,
            state: Mutex::new(State::default()),
        }
    }

    /// Makes the index `index` of `table_name` lag, as a global secondary index does (it is
    /// eventually consistent): until [`FakeDynamo::catch_up`], a query on it sees the table
    /// as it is now, not the writes after this.
    pub fn lag_index(&self, table_name: &str, index: &str) {
        let snapshot = self.items(table_name);
        lock(&self.state).lagging.insert(index.to_string(), snapshot);
    }

    /// How many items reads have returned so far (GetItem, Scan and Query; a Scan or a
    /// Query without a filter returns every item it reads, so this is the items read).
    pub fn items_read(&self) -> u64 {
        lock(&self.state).items_read
    }

    /// Ends every lag of [`FakeDynamo::lag_index`].
    pub fn catch_up(&self) {
        lock(&self.state).lagging.clear();
    }

    /// Every item of a table, in insertion order (empty when the table was never used).
    pub fn items(&self, table_name: &str) -> Vec<Item> {
        lock(&self.state)
            .tables
            .get(table_name)
            .map(|t| t.ordered().into_iter().cloned().collect())
            .unwrap_or_default()
    }

    /// One item, by key.
    pub fn item(&self, table_name: &str, key: &str) -> Option<Item> {
        lock(&self.state)
            .tables
            .get(table_name)
            .and_then(|t| t.get(key))
            .cloned()
    }

    /// Seeds an item as is (no fault check, no condition, no number canonicalization),
    /// creating the table keyed by `key_attr` if needed. Panics when the item has no
    /// string `key_attr` or the table is keyed otherwise: that is a mistake in the test.
    pub fn put_raw(&self, table_name: &str, key_attr: &str, item: Item) {
        let Some(AttributeValue::S(key)) = item.get(key_attr) else {
            panic!("put_raw: the item has no string key attribute {key_attr:?}");
        };
        let key = key.clone();
        let mut st = lock(&self.state);
        if let Err(e) = st.table(table_name, key_attr) {
            drop(st);
            panic!("put_raw: {e}");
        }
        st.write(table_name, key, Some(item));
    }

    /// Removes an item as is (no fault check). True when it existed.
    pub fn delete_raw(&self, table_name: &str, key: &str) -> bool {
        lock(&self.state)
            .tables
            .get_mut(table_name)
            .is_some_and(|t| t.items.remove(key).is_some())
    }

    /// The names of the tables used so far, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.state).tables.keys().cloned().collect();
        v.sort();
        v
    }
}

/// The operations themselves; the trait below adds the gates that hold a caller after.
impl FakeDynamo {
    async fn op_get(&self, table: &Table, key: &str, _consistent: bool) -> Result<Option<Item>, AwsError> {
        const OP: &str = ops::GET_ITEM;
        self.env.enter(SERVICE, OP).await?;
        validate_key(key).map_err(|e| invalid(OP, e))?;
        let mut st = lock(&self.state);
        let t = st.table(&table.name, table.key).map_err(|e| invalid(OP, e))?;
        let item = t.get(key).cloned();
        st.items_read += u64::from(item.is_some());
        Ok(item)
    }

    async fn op_put(&self, table: &Table, item: Item, cond: Cond) -> Result<(), AwsError> {
        const OP: &str = ops::PUT_ITEM;
        self.env.enter(SERVICE, OP).await?;
        let (key, item) = prepare_item(table.key, &item).map_err(|e| invalid(OP, e))?;
        validate_cond(&cond).map_err(|e| invalid(OP, e))?;
        let mut st = lock(&self.state);
        let t = st.table(&table.name, table.key).map_err(|e| invalid(OP, e))?;
        if !eval(&cond, t.get(&key)) {
            return Err(condition_failed(OP));
        }
        st.write(&table.name, key, Some(item));
        Ok(())
    }

    /// UpdateItem → the item before it (`None` if there was none) and after it.
    async fn op_update(
        &self,
        table: &Table,
        key: &str,
        update: &Update,
        cond: Cond,
    ) -> Result<(Option<Item>, Item), AwsError> {
        const OP: &str = ops::UPDATE_ITEM;
        self.env.enter(SERVICE, OP).await?;
        validate_key(key).map_err(|e| invalid(OP, e))?;
        validate_update(table.key, update).map_err(|e| invalid(OP, e))?;
        validate_cond(&cond).map_err(|e| invalid(OP, e))?;
        let mut st = lock(&self.state);
        let t = st.table(&table.name, table.key).map_err(|e| invalid(OP, e))?;
        let existing = t.get(key);
        if !eval(&cond, existing) {
            return Err(condition_failed(OP));
        }
        let old = existing.cloned();
        let new = apply_update(table.key, key, existing, update).map_err(|e| invalid(OP, e))?;
        st.write(&table.name, key.to_string(), Some(new.clone()));
        Ok((old, new))
    }

    async fn op_delete(&self, table: &Table, key: &str, cond: Cond) -> Result<(), AwsError> {
        const OP: &str = ops::DELETE_ITEM;
        self.env.enter(SERVICE, OP).await?;
        validate_key(key).map_err(|e| invalid(OP, e))?;
        validate_cond(&cond).map_err(|e| invalid(OP, e))?;
        let mut st = lock(&self.state);
        let t = st.table(&table.name, table.key).map_err(|e| invalid(OP, e))?;
        if !eval(&cond, t.get(key)) {
            return Err(condition_failed(OP));
        }
        st.write(&table.name, key.to_string(), None);
        Ok(())
    }

    async fn op_scan(&self, table: &Table) -> Result<Vec<Item>, AwsError> {
        const OP: &str = ops::SCAN;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let t = st.table(&table.name, table.key).map_err(|e| invalid(OP, e))?;
        let items: Vec<Item> = t.ordered().into_iter().cloned().collect();
        st.items_read += items.len() as u64;
        Ok(items)
    }

    async fn op_query(&self, table: &Table, query: &Query) -> Result<Vec<Item>, AwsError> {
        const OP: &str = ops::QUERY;
        self.env.enter(SERVICE, OP).await?;
        nonempty_attr(&query.hash_attr).map_err(|e| invalid(OP, e))?;
        canon(&query.hash_value).map_err(|e| invalid(OP, e))?;
        if query.index.is_none() && query.hash_attr != table.key {
            return Err(invalid(
                OP,
                format!("Query condition missed key schema element: {}", table.key),
            ));
        }
        if let Some((attr, rc)) = &query.range {
            nonempty_attr(attr).map_err(|e| invalid(OP, e))?;
            let values: Vec<&AttributeValue> = match rc {
                RangeCond::Between(a, b) => vec![a, b],
                RangeCond::Lt(a) | RangeCond::Ge(a) => vec![a],
            };
            for v in values {
                if !matches!(v, AttributeValue::N(_) | AttributeValue::S(_) | AttributeValue::B(_)) {
                    return Err(invalid(OP, "A key condition value must be S, N or B".into()));
                }
                canon(v).map_err(|e| invalid(OP, e))?;
            }
            if let RangeCond::Between(a, b) = rc {
                if av_cmp(a, b) == Some(Ordering::Greater) {
                    return Err(invalid(
                        OP,
                        "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound".into(),
                    ));
                }
            }
        }
        let mut st = lock(&self.state);
        let lagging = query.index.as_ref().and_then(|i| st.lagging.get(i)).cloned();
        let t = st.table(&table.name, table.key).map_err(|e| invalid(OP, e))?;
        let current: Vec<&Item> = t.ordered();
        let items: Vec<&Item> = match &lagging {
            Some(snapshot) => snapshot.iter().collect(),
            None => current,
        };
        let mut out: Vec<&Item> = items
            .into_iter()
            .filter(|i| i.get(&query.hash_attr).is_some_and(|v| av_eq(v, &query.hash_value)))
            .filter(|i| match &query.range {
                None => true,
                Some((attr, rc)) => i.get(attr).is_some_and(|v| range_matches(v, rc)),
            })
            .collect();
        if let Some((attr, _)) = &query.range {
            out.sort_by(|a, b| match (a.get(attr), b.get(attr)) {
                (Some(x), Some(y)) => av_cmp(x, y).unwrap_or(Ordering::Equal),
                _ => Ordering::Equal,
            });
        }
        let out: Vec<Item> = out.into_iter().cloned().collect();
        st.items_read += out.len() as u64;
        Ok(out)
    }

    async fn op_transact(&self, ops_list: Vec<TransactOp>) -> Result<(), AwsError> {
        const OP: &str = ops::TRANSACT_WRITE_ITEMS;
        self.env.enter(SERVICE, OP).await?;
        if ops_list.is_empty() || ops_list.len() > 100 {
            return Err(invalid(OP, "TransactItems must have 1 to 100 members".into()));
        }
        // Static validation of the whole request, before any condition.
        let mut targets: Vec<(String, String)> = Vec::new();
        let mut prepared: Vec<Option<Item>> = Vec::new();
        for op in &ops_list {
            let (table, key, item) = match op {
                TransactOp::Put { table, item, cond } => {
                    validate_cond(cond).map_err(|e| invalid(OP, e))?;
                    let (key, item) = prepare_item(table.key, item).map_err(|e| invalid(OP, e))?;
                    (table, key, Some(item))
                }
                TransactOp::Update {
                    table,
                    key,
                    update,
                    cond,
                } => {
                    validate_key(key).map_err(|e| invalid(OP, e))?;
                    validate_update(table.key, update).map_err(|e| invalid(OP, e))?;
                    validate_cond(cond).map_err(|e| invalid(OP, e))?;
                    (table, key.clone(), None)
                }
                TransactOp::Delete { table, key, cond } | TransactOp::ConditionCheck { table, key, cond } => {
                    validate_key(key).map_err(|e| invalid(OP, e))?;
                    validate_cond(cond).map_err(|e| invalid(OP, e))?;
                    (table, key.clone(), None)
                }
            };
            let target = (table.name.clone(), key);
            if targets.contains(&target) {
                return Err(invalid(
                    OP,
                    "Transaction request cannot include multiple operations on one item".into(),
                ));
            }
            targets.push(target);
            prepared.push(item);
        }
        let mut st = lock(&self.state);
        for op in &ops_list {
            let table = match op {
                TransactOp::Put { table, .. }
                | TransactOp::Update { table, .. }
                | TransactOp::Delete { table, .. }
                | TransactOp::ConditionCheck { table, .. } => table,
            };
            st.table(&table.name, table.key).map_err(|e| invalid(OP, e))?;
        }
        // Every condition against the state before the transaction; nothing written yet.
        let mut reasons: Vec<&'static str> = Vec::new();
        let mut writes: Vec<(String, String, Option<Item>)> = Vec::new();
        for ((op, (table_name, key)), item) in ops_list.iter().zip(&targets).zip(prepared) {
            let Some(t) = st.tables.get(table_name) else {
                return Err(invalid(OP, format!("Requested resource not found: {table_name}")));
            };
            let current = t.get(key);
            let (cond, outcome) = match op {
                TransactOp::Put { cond, .. } => (cond, Ok(Some(item))),
                TransactOp::Update {
                    table, update, cond, ..
                } => (
                    cond,
                    apply_update(table.key, key, current, update).map(|i| Some(Some(i))),
                ),
                TransactOp::Delete { cond, .. } => (cond, Ok(Some(None))),
                TransactOp::ConditionCheck { cond, .. } => (cond, Ok(None)),
            };
            if !eval(cond, current) {
                reasons.push("ConditionalCheckFailed");
                continue;
            }
            match outcome {
                Ok(Some(new)) => {
                    reasons.push("None");
                    writes.push((table_name.clone(), key.clone(), new));
                }
                Ok(None) => reasons.push("None"),
                Err(_) => reasons.push("ValidationError"),
            }
        }
        if reasons.iter().any(|r| *r != "None") {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::TransactionCanceled,
                "TransactionCanceledException",
                format!(
                    "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                    reasons.join(", ")
                ),
            ));
        }
        for (table_name, key, item) in writes {
            st.write(&table_name, key, item);
        }
        Ok(())
    }
}

#[async_trait]
impl Dynamo for FakeDynamo {
    async fn get(&self, table: &Table, key: &str, consistent: bool) -> Result<Option<Item>, AwsError> {
        let r = self.op_get(table, key, consistent).await;
        self.env.leave(ops::GET_ITEM).await;
        r
    }

    async fn put(&self, table: &Table, item: Item, cond: Cond) -> Result<(), AwsError> {
        let r = self.op_put(table, item, cond).await;
        self.env.leave(ops::PUT_ITEM).await;
        r
    }

    async fn update(&self, table: &Table, key: &str, update: &Update, cond: Cond) -> Result<Item, AwsError> {
        let r = self.op_update(table, key, update, cond).await;
        self.env.leave(ops::UPDATE_ITEM).await;
        r.map(|(_, new)| new)
    }

    async fn update_returning_old(
        &self,
        table: &Table,
        key: &str,
        update: &Update,
        cond: Cond,
    ) -> Result<Option<Item>, AwsError> {
        let r = self.op_update(table, key, update, cond).await;
        self.env.leave(ops::UPDATE_ITEM).await;
        r.map(|(old, _)| old)
    }

    async fn delete(&self, table: &Table, key: &str, cond: Cond) -> Result<(), AwsError> {
        let r = self.op_delete(table, key, cond).await;
        self.env.leave(ops::DELETE_ITEM).await;
        r
    }

    async fn scan(&self, table: &Table) -> Result<Vec<Item>, AwsError> {
        let r = self.op_scan(table).await;
        self.env.leave(ops::SCAN).await;
        r
    }

    async fn query(&self, table: &Table, query: &Query) -> Result<Vec<Item>, AwsError> {
        let r = self.op_query(table, query).await;
        self.env.leave(ops::QUERY).await;
        r
    }

    async fn transact(&self, writes: Vec<TransactOp>) -> Result<(), AwsError> {
        let r = self.op_transact(writes).await;
        self.env.leave(ops::TRANSACT_WRITE_ITEMS).await;
        r
    }

    async fn table_status(&self, _table: &str) -> Result<String, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_TABLE).await?;
        Ok("ACTIVE".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Faults;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }
    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }
    fn fake() -> FakeDynamo {
        FakeDynamo::new(Arc::new(Faults::new()))
    }

    #[test]
    fn numbers_parse_compare_add_and_print_canonically() {
        let p = |s: &str| Num::parse(s).unwrap();
        assert_eq!(p("1.50").text(), "1.5");
        assert_eq!(p("007").text(), "7");
        assert_eq!(p("-0.0").text(), "0");
        assert_eq!(p("1.5e2").text(), "150");
        assert_eq!(p("25E-3").text(), "0.025");
        assert_eq!(p("-.5").text(), "-0.5");
        assert_eq!(p("10").text(), "10");
        assert!(Num::parse("").is_none() && Num::parse("abc").is_none() && Num::parse("1.2.3").is_none());
        assert!(Num::parse("-").is_none() && Num::parse("1e").is_none() && Num::parse(".").is_none());
        assert_eq!(p("9").cmp(&p("10")), Ordering::Less);
        assert_eq!(p("-1.5").cmp(&p("-1.25")), Ordering::Less);
        assert_eq!(p("2.50").cmp(&p("2.5")), Ordering::Equal);
        assert_eq!(p("0.1").checked_add(&p("0.2")).unwrap().text(), "0.3");
        assert_eq!(p("1.5").checked_add(&p("-1.5")).unwrap().text(), "0");
        assert_eq!(p("-3").checked_add(&p("1.25")).unwrap().text(), "-1.75");
    }

    #[tokio::test]
    async fn put_conditions() {
        let d = fake();
        let t = Table::new("instances", "userId");
        let a = item(&[("userId", s("a")), ("status", s("running")), ("n", n("5"))]);
        d.put(&t, a.clone(), Cond::not_exists("userId")).await.unwrap();
        let e = d.put(&t, a.clone(), Cond::not_exists("userId")).await.unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::ConditionFailed);
        assert!(e.is_condition_failed());
        d.put(&t, a.clone(), Cond::eq_s("status", "running")).await.unwrap();
        assert!(d.put(&t, a.clone(), Cond::eq_s("status", "stopped")).await.is_err());
        d.put(&t, a.clone(), Cond::ne_s("status", "stopped")).await.unwrap();
        d.put(&t, a.clone(), Cond::ne_s("missing", "x")).await.unwrap();
        assert!(d.put(&t, a.clone(), Cond::ne_s("status", "running")).await.is_err());
        d.put(&t, a.clone(), Cond::in_s("status", &["stopped", "running"]))
            .await
            .unwrap();
        assert!(d
            .put(&t, a.clone(), Cond::in_s("status", &["stopped", "created"]))
            .await
            .is_err());
        assert!(d.put(&t, a.clone(), Cond::in_s("missing", &["x"])).await.is_err());
        // Numbers compare numerically.
        d.put(&t, a.clone(), Cond::Eq("n".into(), n("5.0"))).await.unwrap();
        d.put(&t, a.clone(), Cond::Lt("n".into(), n("10"))).await.unwrap();
        assert!(d.put(&t, a.clone(), Cond::Lt("n".into(), n("5"))).await.is_err());
        assert!(d.put(&t, a.clone(), Cond::Lt("missing".into(), n("5"))).await.is_err());
        // And / Or.
        let and = Cond::And(vec![Cond::exists("userId"), Cond::eq_s("status", "running")]);
        d.put(&t, a.clone(), and).await.unwrap();
        let and_false = Cond::And(vec![Cond::exists("userId"), Cond::eq_s("status", "stopped")]);
        assert!(d.put(&t, a.clone(), and_false).await.is_err());
        let or = Cond::Or(vec![Cond::not_exists("userId"), Cond::eq_s("status", "running")]);
        d.put(&t, a.clone(), or).await.unwrap();
        let or_false = Cond::Or(vec![Cond::not_exists("userId"), Cond::eq_s("status", "x")]);
        assert!(d.put(&t, a.clone(), or_false).await.is_err());
        // On a missing item.
        let b = item(&[("userId", s("b"))]);
        assert!(d.put(&t, b.clone(), Cond::exists("userId")).await.is_err());
        assert!(d.put(&t, b.clone(), Cond::eq_s("status", "x")).await.is_err());
        d.put(&t, b, Cond::ne_s("status", "x")).await.unwrap();
        assert_eq!(d.items("instances").len(), 2);
    }

    #[tokio::test]
    async fn bad_input_is_invalid_not_a_panic() {
        let d = fake();
        let t = Table::new("instances", "userId");
        let no_key = item(&[("x", s("1"))]);
        assert_eq!(
            d.put(&t, no_key, Cond::Always).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
        let bad_n = item(&[("userId", s("a")), ("x", n("1..2"))]);
        assert_eq!(
            d.put(&t, bad_n, Cond::Always).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
        assert_eq!(d.get(&t, "", false).await.unwrap_err().kind, AwsErrorKind::Invalid);
        let up = Update::new().set_s("userId", "b");
        assert_eq!(
            d.update(&t, "a", &up, Cond::Always).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
        d.put(&t, item(&[("userId", s("z"))]), Cond::Always).await.unwrap();
        let other_key = Table::new("instances", "id");
        assert_eq!(
            d.get(&other_key, "a", false).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
        d.update(&t, "a", &Update::new().set_s("s", "x"), Cond::Always)
            .await
            .unwrap();
        let e = d
            .update(&t, "a", &Update::new().add_n("s", "1"), Cond::Always)
            .await
            .unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::Invalid);
        assert_eq!(
            d.delete(&t, "a", Cond::And(vec![])).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
    }

    #[tokio::test]
    async fn update_creates_adds_and_removes() {
        let d = fake();
        let t = Table::new("usage", "key");
        let up = Update::new().add_n("hours", "1.5").set_s("month", "2026-01");
        let out = d.update(&t, "u#2026-01", &up, Cond::Always).await.unwrap();
        assert_eq!(out.get("key"), Some(&s("u#2026-01")));
        assert_eq!(out.get("hours"), Some(&n("1.5")));
        let out = d
            .update(&t, "u#2026-01", &Update::new().add_n("hours", "2.50"), Cond::Always)
            .await
            .unwrap();
        assert_eq!(out.get("hours"), Some(&n("4")));
        let out = d
            .update(
                &t,
                "u#2026-01",
                &Update::new().add_n("hours", "-0.25").remove("month"),
                Cond::Always,
            )
            .await
            .unwrap();
        assert_eq!(out.get("hours"), Some(&n("3.75")));
        assert!(!out.contains_key("month"));
        // A condition that needs the item prevents creating it.
        let e = d
            .update(&t, "other", &Update::new().set_n("x", 1), Cond::exists("key"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::ConditionFailed);
        assert_eq!(d.item("usage", "other"), None);
        // Canonical numbers on SET as well.
        let out = d
            .update(&t, "u#2026-01", &Update::new().set("x", n("010.0")), Cond::Always)
            .await
            .unwrap();
        assert_eq!(out.get("x"), Some(&n("10")));
    }

    #[tokio::test]
    async fn query_filters_and_orders() {
        let d = fake();
        let t = Table::new("sessions", "sessionId");
        for (id, user, start) in [
            ("s1", "u", "100"),
            ("s2", "u", "9"),
            ("s3", "v", "50"),
            ("s4", "u", "20"),
            ("s5", "u", "1000"),
        ] {
            d.put(
                &t,
                item(&[("sessionId", s(id)), ("userId", s(user)), ("startTime", n(start))]),
                Cond::Always,
            )
            .await
            .unwrap();
        }
        d.put(&t, item(&[("sessionId", s("s6")), ("userId", s("u"))]), Cond::Always)
            .await
            .unwrap();
        let ids = |items: Vec<Item>| -> Vec<String> {
            items
                .iter()
                .map(|i| match i.get("sessionId") {
                    Some(AttributeValue::S(s)) => s.clone(),
                    _ => String::new(),
                })
                .collect()
        };
        let q = |range: Option<(String, RangeCond)>| Query {
            index: Some("userId-startTime-index".into()),
            hash_attr: "userId".into(),
            hash_value: s("u"),
            range,
        };
        // No range: insertion order, every item of the hash value.
        assert_eq!(
            ids(d.query(&t, &q(None)).await.unwrap()),
            vec!["s1", "s2", "s4", "s5", "s6"]
        );
        // Range: numeric ascending order; items without the attribute excluded.
        let r = q(Some(("startTime".into(), RangeCond::Ge(n("10")))));
        assert_eq!(ids(d.query(&t, &r).await.unwrap()), vec!["s4", "s1", "s5"]);
        let r = q(Some(("startTime".into(), RangeCond::Between(n("9"), n("100")))));
        assert_eq!(ids(d.query(&t, &r).await.unwrap()), vec!["s2", "s4", "s1"]);
        let r = q(Some(("startTime".into(), RangeCond::Lt(n("100")))));
        assert_eq!(ids(d.query(&t, &r).await.unwrap()), vec!["s2", "s4"]);
        // Strings sort lexicographically.
        let t2 = Table::new("res", "id");
        for (id, at) in [("a", "2026-03"), ("b", "2026-01"), ("c", "2026-02")] {
            d.put(&t2, item(&[("id", s(id)), ("p", s("x")), ("at", s(at))]), Cond::Always)
                .await
                .unwrap();
        }
        let r = Query {
            index: Some("p-at".into()),
            hash_attr: "p".into(),
            hash_value: s("x"),
            range: Some(("at".into(), RangeCond::Ge(s("2026-02")))),
        };
        let got: Vec<_> = d
            .query(&t2, &r)
            .await
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        assert_eq!(got, vec![s("c"), s("a")]);
        // On the table, the hash attribute must be the key.
        let bad = Query {
            index: None,
            hash_attr: "userId".into(),
            hash_value: s("u"),
            range: None,
        };
        assert_eq!(d.query(&t, &bad).await.unwrap_err().kind, AwsErrorKind::Invalid);
        let by_key = Query {
            index: None,
            hash_attr: "sessionId".into(),
            hash_value: s("s3"),
            range: None,
        };
        assert_eq!(ids(d.query(&t, &by_key).await.unwrap()), vec!["s3"]);
    }

    #[tokio::test]
    async fn scan_keeps_insertion_order_across_overwrites() {
        let d = fake();
        let t = Table::new("tbl", "k");
        for k in ["c", "a", "b"] {
            d.put(&t, item(&[("k", s(k))]), Cond::Always).await.unwrap();
        }
        d.put(&t, item(&[("k", s("c")), ("v", n("1"))]), Cond::Always)
            .await
            .unwrap();
        d.delete(&t, "a", Cond::Always).await.unwrap();
        d.delete(&t, "missing", Cond::Always).await.unwrap();
        assert!(d.delete(&t, "missing", Cond::exists("k")).await.is_err());
        d.put(&t, item(&[("k", s("a"))]), Cond::Always).await.unwrap();
        let keys: Vec<_> = d.scan(&t).await.unwrap().iter().map(|i| i["k"].clone()).collect();
        assert_eq!(keys, vec![s("c"), s("b"), s("a")]);
    }

    #[tokio::test]
    async fn transactions_are_all_or_nothing() {
        let d = fake();
        let pool = Table::new("pool", "id");
        let res = Table::new("reservations", "id");
        d.put(&pool, item(&[("id", s("lic")), ("n", n("1"))]), Cond::Always)
            .await
            .unwrap();
        let ops = |cond: Cond| {
            vec![
                TransactOp::Put {
                    table: res.clone(),
                    item: item(&[("id", s("r1"))]),
                    cond: Cond::not_exists("id"),
                },
                TransactOp::Update {
                    table: pool.clone(),
                    key: "lic".into(),
                    update: Update::new().add_n("n", "1"),
                    cond: Cond::Always,
                },
                TransactOp::ConditionCheck {
                    table: pool.clone(),
                    key: "lic".into(),
                    cond,
                },
            ]
        };
        // The update and the check on the same item are refused statically.
        assert_eq!(
            d.transact(ops(Cond::Always)).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
        let ops = |cond: Cond| {
            vec![
                TransactOp::Put {
                    table: res.clone(),
                    item: item(&[("id", s("r1"))]),
                    cond: Cond::not_exists("id"),
                },
                TransactOp::Update {
                    table: pool.clone(),
                    key: "lic".into(),
                    update: Update::new().add_n("n", "1"),
                    cond,
                },
                TransactOp::Delete {
                    table: pool.clone(),
                    key: "gone".into(),
                    cond: Cond::Always,
                },
            ]
        };
        let e = d.transact(ops(Cond::eq_s("id", "other"))).await.unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::TransactionCanceled);
        assert!(
            e.message.contains("[None, ConditionalCheckFailed, None]"),
            "{}",
            e.message
        );
        assert!(d.items("reservations").is_empty());
        assert_eq!(d.item("pool", "lic").unwrap()["n"], n("1"));
        d.transact(ops(Cond::Eq("n".into(), n("1")))).await.unwrap();
        assert_eq!(d.items("reservations").len(), 1);
        assert_eq!(d.item("pool", "lic").unwrap()["n"], n("2"));
        // The reservation now exists: the same transaction is cancelled, nothing changes.
        let e = d.transact(ops(Cond::Always)).await.unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::TransactionCanceled);
        assert_eq!(d.item("pool", "lic").unwrap()["n"], n("2"));
    }

    #[tokio::test]
    async fn put_raw_seeds_and_concurrent_conditional_puts_admit_one() {
        let d = Arc::new(fake());
        d.put_raw("t-seed", "id", item(&[("id", s("x")), ("v", n("1"))]));
        assert_eq!(d.items("t-seed").len(), 1);
        let t = Table::new("t-race", "id");
        let mut handles = Vec::new();
        for i in 0..16 {
            let d = d.clone();
            let t = t.clone();
            handles.push(tokio::spawn(async move {
                d.put(
                    &t,
                    item(&[("id", s("one")), ("by", n(&i.to_string()))]),
                    Cond::not_exists("id"),
                )
                .await
                .is_ok()
            }));
        }
        let mut ok = 0;
        for h in handles {
            if h.await.unwrap() {
                ok += 1;
            }
        }
        assert_eq!(ok, 1);
    }
}
