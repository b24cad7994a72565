//! DynamoDB: the untyped item seam. The typed store over it is `crate::store`.
//!
//! Conditions, updates and key conditions are our own small types, so that the SDK
//! adapter can render them as expressions and the in-memory fake can evaluate them
//! directly, with the same meaning.

use std::collections::HashMap;

use async_trait::async_trait;
pub use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::AwsError;

/// One DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A table: its name and the name of its (string) partition key. None of our
/// tables has a sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub key: &'static str,
}

impl Table {
    pub fn new(name: impl Into<String>, key: &'static str) -> Self {
        Table { name: name.into(), key }
    }
}

/// A condition on the item as it is before the write.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// No condition.
    Always,
    /// `attribute_exists(<attr>)`
    Exists(String),
    /// `attribute_not_exists(<attr>)`
    NotExists(String),
    /// `<attr> = <value>`
    Eq(String, AttributeValue),
    /// `<attr> <> <value>` (true when the attribute is missing)
    Ne(String, AttributeValue),
    /// `<attr> IN (<values>)`
    In(String, Vec<AttributeValue>),
    /// `<attr> < <value>` on numbers
    Lt(String, AttributeValue),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

impl Cond {
    pub fn exists(attr: &str) -> Self {
        Cond::Exists(attr.to_string())
    }
    pub fn not_exists(attr: &str) -> Self {
        Cond::NotExists(attr.to_string())
    }
    pub fn eq_s(attr: &str, value: &str) -> Self {
        Cond::Eq(attr.to_string(), AttributeValue::S(value.to_string()))
    }
    pub fn ne_s(attr: &str, value: &str) -> Self {
        Cond::Ne(attr.to_string(), AttributeValue::S(value.to_string()))
    }
    pub fn in_s(attr: &str, values: &[&str]) -> Self {
        Cond::In(
            attr.to_string(),
            values.iter().map(|v| AttributeValue::S((*v).to_string())).collect(),
        )
    }
}

/// One change of an UpdateItem.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `SET #a = :v`
    Set(AttributeValue),
    /// `REMOVE #a`
    Remove,
    /// `ADD #a :n` (numbers; a missing attribute counts as 0)
    Add(AttributeValue),
}

/// The changes of an UpdateItem, in order. An attribute appears at most once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    pub changes: Vec<(String, Change)>,
}

impl Update {
    pub fn new() -> Self {
        Update::default()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    fn push(mut self, attr: &str, change: Change) -> Self {
        self.changes.retain(|(a, _)| a != attr);
        self.changes.push((attr.to_string(), change));
        self
    }

    pub fn set(self, attr: &str, value: AttributeValue) -> Self {
        self.push(attr, Change::Set(value))
    }
    pub fn set_s(self, attr: &str, value: impl Into<String>) -> Self {
        self.set(attr, AttributeValue::S(value.into()))
    }
    pub fn set_n(self, attr: &str, value: i64) -> Self {
        self.set(attr, AttributeValue::N(value.to_string()))
    }
    pub fn set_bool(self, attr: &str, value: bool) -> Self {
        self.set(attr, AttributeValue::Bool(value))
    }
    pub fn remove(self, attr: &str) -> Self {
        self.push(attr, Change::Remove)
    }
    /// `ADD` a number given in DynamoDB's decimal text form.
    pub fn add_n(self, attr: &str, number: impl Into<String>) -> Self {
        self.push(attr, Change::Add(AttributeValue::N(number.into())))
    }
    /// SET when `Some`, REMOVE when `None`.
    pub fn set_or_remove(self, attr: &str, value: Option<AttributeValue>) -> Self {
        match value {
            Some(v) => self.set(attr, v),
            None => self.remove(attr),
        }
    }
}

/// A sort-key condition of a Query.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeCond {
    /// `BETWEEN :a AND :b` (inclusive)
    Between(AttributeValue, AttributeValue),
    /// `< :a`
    Lt(AttributeValue),
    /// `>= :a`
    Ge(AttributeValue),
}

/// A Query on the table or one of its GSIs.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub index: Option<String>,
    pub hash_attr: String,
    pub hash_value: AttributeValue,
    pub range: Option<(String, RangeCond)>,
}

/// One write of a TransactWriteItems.
#[derive(Debug, Clone, PartialEq)]
pub enum TransactOp {
    Put {
        table: Table,
        item: Item,
        cond: Cond,
    },
    Update {
        table: Table,
        key: String,
        update: Update,
        cond: Cond,
    },
    Delete {
        table: Table,
        key: String,
        cond: Cond,
    },
    ConditionCheck {
        table: Table,
        key: String,
        cond: Cond,
    },
}

#[async_trait]
pub trait Dynamo: Send + Sync {
    /// GetItem (eventually consistent unless `consistent`).
    async fn get(&self, table: &Table, key: &str, consistent: bool) -> Result<Option<Item>, AwsError>;

    /// PutItem. A false condition is a `ConditionFailed` error.
    async fn put(&self, table: &Table, item: Item, cond: Cond) -> Result<(), AwsError>;

    /// UpdateItem → the item after the update (ReturnValues ALL_NEW). Creates the item
    /// when it is missing and the condition allows it. A false condition is a
    /// `ConditionFailed` error.
    async fn update(&self, table: &Table, key: &str, update: &Update, cond: Cond) -> Result<Item, AwsError>;

    /// UpdateItem → the item before the update (ReturnValues ALL_OLD), `None` when the
    /// update created it. As [`Dynamo::update`] otherwise, but an empty `update` is an
    /// `Invalid` error.
    async fn update_returning_old(
        &self,
        table: &Table,
        key: &str,
        update: &Update,
        cond: Cond,
    ) -> Result<Option<Item>, AwsError>;

    /// DeleteItem. Deleting a missing item is not an error (unless the condition says so).
    async fn delete(&self, table: &Table, key: &str, cond: Cond) -> Result<(), AwsError>;

    /// Scan the whole table, every page.
    async fn scan(&self, table: &Table) -> Result<Vec<Item>, AwsError>;

    /// Query, every page, in ascending sort-key order.
    async fn query(&self, table: &Table, query: &Query) -> Result<Vec<Item>, AwsError>;

    /// TransactWriteItems: all or nothing. A false condition is a `TransactionCanceled` error.
    async fn transact(&self, ops: Vec<TransactOp>) -> Result<(), AwsError>;

    /// DescribeTable → the table's status (`ACTIVE`, `UPDATING`, …): a health probe.
    async fn table_status(&self, table: &str) -> Result<String, AwsError>;
}

/// The SDK adapter. `page_limit` sets `Limit` on every Scan/Query page (tests use it to
/// force pagination); `None` lets DynamoDB fill 1 MB pages.
pub struct SdkDynamo {
    client: super::sdk::LazyClient<aws_sdk_dynamodb::Client>,
    page_limit: Option<i32>,
}

impl SdkDynamo {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SdkDynamo {
            client: super::sdk::LazyClient::new(sdk, |sdk| {
                let mut conf = aws_sdk_dynamodb::config::Builder::from(sdk);
                conf.push_interceptor(instrument::interceptor());
                aws_sdk_dynamodb::Client::from_conf(conf.build())
            }),
            page_limit: None,
        }
    }

    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.page_limit = Some(limit);
        self
    }

    /// One UpdateItem of a rendered update expression → the attributes `returns` asks for.
    async fn send_update(
        &self,
        table: &Table,
        key: &str,
        mut expr: Expr,
        update_expr: String,
        cond: &Cond,
        returns: ReturnValue,
    ) -> Result<Option<Item>, AwsError> {
        const OP: &str = "UpdateItem";
        let cond = render_condition(&mut expr, OP, cond)?;
        let out = self
            .client
            .update_item()
            .table_name(&table.name)
            .set_key(Some(key_of(table, key)))
            .update_expression(update_expr)
            .set_condition_expression(cond)
            .set_expression_attribute_names(expr.names_param())
            .set_expression_attribute_values(expr.values_param())
            .return_values(returns)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(out.attributes)
    }
}

// ---------------------------------------------------------------------------
// Expression rendering (pure; unit-tested below).
// ---------------------------------------------------------------------------

/// Placeholder maps and rendered expressions of one request.
///
/// Attribute names become `#n0`, `#n1`, … (one placeholder per distinct name, shared by
/// every expression of the request) and values become `:v0`, `:v1`, … (one per use).
/// Names and values are never inlined into an expression.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    placeholder_of: HashMap<String, String>,
}

impl Expr {
    pub fn new() -> Self {
        Expr::default()
    }

    /// The placeholder of attribute `attr` (`#nK`), reused for a name seen before.
    pub fn name(&mut self, attr: &str) -> String {
        if let Some(p) = self.placeholder_of.get(attr) {
            return p.clone();
        }
        let p = format!("#n{}", self.names.len());
        self.names.insert(p.clone(), attr.to_string());
        self.placeholder_of.insert(attr.to_string(), p.clone());
        p
    }

    /// A new placeholder (`:vK`) for `value`.
    pub fn value(&mut self, value: &AttributeValue) -> String {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), value.clone());
        p
    }

    /// `#nK` → attribute name.
    pub fn names(&self) -> &HashMap<String, String> {
        &self.names
    }

    /// `:vK` → value.
    pub fn values(&self) -> &HashMap<String, AttributeValue> {
        &self.values
    }

    /// The name map for a request: `None` when empty (DynamoDB rejects an empty map).
    pub fn names_param(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// The value map for a request: `None` when empty (DynamoDB rejects an empty map).
    pub fn values_param(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// Renders a condition. `Ok(None)` when it is always true (send no ConditionExpression).
    /// An empty `Or` or `In` (always false, which DynamoDB cannot express) is an error.
    pub fn condition(&mut self, cond: &Cond) -> Result<Option<String>, String> {
        match simplify(cond)? {
            None => Ok(None),
            Some(c) => Ok(Some(self.render_cond(&c))),
        }
    }

    fn render_cond(&mut self, cond: &Cond) -> String {
        match cond {
            // `simplify` removed every `Always`; keep a harmless rendering anyway.
            Cond::Always => String::new(),
            Cond::Exists(a) => format!("attribute_exists({})", self.name(a)),
            Cond::NotExists(a) => format!("attribute_not_exists({})", self.name(a)),
            Cond::Eq(a, v) => self.comparison(a, "=", v),
            // DynamoDB's `<>` is true when the attribute is missing, as `Cond::Ne` requires.
            Cond::Ne(a, v) => self.comparison(a, "<>", v),
            Cond::Lt(a, v) => self.comparison(a, "<", v),
            Cond::In(a, vs) => {
                let n = self.name(a);
                let ps: Vec<String> = vs.iter().map(|v| self.value(v)).collect();
                format!("{n} IN ({})", ps.join(", "))
            }
            Cond::And(cs) => self.junction(cs, " AND "),
            Cond::Or(cs) => self.junction(cs, " OR "),
        }
    }

    fn comparison(&mut self, attr: &str, op: &str, value: &AttributeValue) -> String {
        let n = self.name(attr);
        let v = self.value(value);
        format!("{n} {op} {v}")
    }

    fn junction(&mut self, conds: &[Cond], sep: &str) -> String {
        let parts: Vec<String> = conds
            .iter()
            .map(|c| {
                let s = self.render_cond(c);
                if matches!(c, Cond::And(_) | Cond::Or(_)) {
                    format!("({s})")
                } else {
                    s
                }
            })
            .collect();
        parts.join(sep)
    }

    /// Renders an update: `SET #a = :v, … REMOVE #b, … ADD #c :n, …`.
    /// `None` for an empty update (send no UpdateExpression).
    pub fn update(&mut self, update: &Update) -> Option<String> {
        let mut set = Vec::new();
        let mut remove = Vec::new();
        let mut add = Vec::new();
        for (attr, change) in &update.changes {
            match change {
                Change::Set(v) => set.push(self.comparison(attr, "=", v)),
                Change::Remove => remove.push(self.name(attr)),
                Change::Add(v) => {
                    let n = self.name(attr);
                    let v = self.value(v);
                    add.push(format!("{n} {v}"));
                }
            }
        }
        let mut clauses = Vec::new();
        if !set.is_empty() {
            clauses.push(format!("SET {}", set.join(", ")));
        }
        if !remove.is_empty() {
            clauses.push(format!("REMOVE {}", remove.join(", ")));
        }
        if !add.is_empty() {
            clauses.push(format!("ADD {}", add.join(", ")));
        }
        (!clauses.is_empty()).then(|| clauses.join(" "))
    }

    /// Renders the KeyConditionExpression of a query.
    pub fn key_condition(&mut self, query: &Query) -> String {
        let hash = self.comparison(&query.hash_attr, "=", &query.hash_value);
        match &query.range {
            None => hash,
            Some((attr, range)) => {
                let n = self.name(attr);
                let range = match range {
                    RangeCond::Between(lo, hi) => {
                        let lo = self.value(lo);
                        let hi = self.value(hi);
                        format!("{n} BETWEEN {lo} AND {hi}")
                    }
                    RangeCond::Lt(v) => format!("{n} < {}", self.value(v)),
                    RangeCond::Ge(v) => format!("{n} >= {}", self.value(v)),
                };
                format!("{hash} AND {range}")
            }
        }
    }
}

/// Removes every `Always` (the identity of `And`, the absorbing element of `Or`) and
/// flattens one-element junctions. `Ok(None)` means "always true".
fn simplify(cond: &Cond) -> Result<Option<Cond>, String> {
    match cond {
        Cond::Always => Ok(None),
        Cond::In(attr, values) if values.is_empty() => Err(format!(
            "condition `{attr} IN ()` has no values (always false; DynamoDB cannot express it)"
        )),
        Cond::And(cs) => {
            let mut kept = Vec::new();
            for c in cs {
                if let Some(c) = simplify(c)? {
                    kept.push(c);
                }
            }
            Ok(match kept.len() {
                0 => None,
                1 => kept.pop(),
                _ => Some(Cond::And(kept)),
            })
        }
        Cond::Or(cs) => {
            if cs.is_empty() {
                return Err("empty Or condition (always false; DynamoDB cannot express it)".to_string());
            }
            let mut kept = Vec::new();
            for c in cs {
                match simplify(c)? {
                    None => return Ok(None),
                    Some(c) => kept.push(c),
                }
            }
            Ok(match kept.len() {
                1 => kept.pop(),
                _ => Some(Cond::Or(kept)),
            })
        }
        other => Ok(Some(other.clone())),
    }
}

/// The key map of an item of `table`.
fn key_of(table: &Table, key: &str) -> Item {
    HashMap::from([(table.key.to_string(), AttributeValue::S(key.to_string()))])
}

fn invalid(operation: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::new(SERVICE, operation, crate::error::AwsErrorKind::Invalid, message.into())
}

const SERVICE: &str = "dynamodb";

/// Renders `cond` for `operation`, mapping a rendering failure to an `Invalid` error.
fn render_condition(expr: &mut Expr, operation: &'static str, cond: &Cond) -> Result<Option<String>, AwsError> {
    expr.condition(cond).map_err(|m| invalid(operation, m))
}

/// Formats the cancellation reasons of a TransactWriteItems, one per operation in order:
/// `[0: ConditionalCheckFailed (The conditional request failed), 1: None]`.
pub fn format_cancellation_reasons(reasons: &[(Option<String>, Option<String>)]) -> String {
    let parts: Vec<String> = reasons
        .iter()
        .enumerate()
        .map(|(i, (code, message))| {
            let code = code.as_deref().unwrap_or("None");
            match message.as_deref() {
                Some(m) if !m.is_empty() => format!("{i}: {code} ({m})"),
                _ => format!("{i}: {code}"),
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

// ---------------------------------------------------------------------------
// The SDK adapter.
// ---------------------------------------------------------------------------

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{self as ddb, ReturnValue, TransactWriteItem};

use crate::managers::{instrument, sdk_error};

impl SdkDynamo {
    /// One `TransactWriteItem`, or `None` for a condition check that is always true.
    fn transact_item(op: TransactOp) -> Result<Option<TransactWriteItem>, AwsError> {
        const OP: &str = "TransactWriteItems";
        let build = |e: aws_smithy_types::error::operation::BuildError| invalid(OP, e.to_string());
        let mut expr = Expr::new();
        let item = match op {
            TransactOp::Put { table, item, cond } => {
                let cond = render_condition(&mut expr, OP, &cond)?;
                let put = ddb::Put::builder()
                    .table_name(table.name)
                    .set_item(Some(item))
                    .set_condition_expression(cond)
                    .set_expression_attribute_names(expr.names_param())
                    .set_expression_attribute_values(expr.values_param())
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().put(put).build()
            }
            TransactOp::Update {
                table,
                key,
                update,
                cond,
            } => {
                let Some(update_expr) = expr.update(&update) else {
                    return Err(invalid(
                        OP,
                        format!("empty update of {}={key} in a transaction", table.key),
                    ));
                };
                let cond = render_condition(&mut expr, OP, &cond)?;
                let upd = ddb::Update::builder()
                    .table_name(table.name.clone())
                    .set_key(Some(key_of(&table, &key)))
                    .update_expression(update_expr)
                    .set_condition_expression(cond)
                    .set_expression_attribute_names(expr.names_param())
                    .set_expression_attribute_values(expr.values_param())
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().update(upd).build()
            }
            TransactOp::Delete { table, key, cond } => {
                let cond = render_condition(&mut expr, OP, &cond)?;
                let del = ddb::Delete::builder()
                    .table_name(table.name.clone())
                    .set_key(Some(key_of(&table, &key)))
                    .set_condition_expression(cond)
                    .set_expression_attribute_names(expr.names_param())
                    .set_expression_attribute_values(expr.values_param())
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().delete(del).build()
            }
            TransactOp::ConditionCheck { table, key, cond } => {
                // A check that always holds changes nothing: leave it out.
                let Some(cond) = render_condition(&mut expr, OP, &cond)? else {
                    return Ok(None);
                };
                let check = ddb::ConditionCheck::builder()
                    .table_name(table.name.clone())
                    .set_key(Some(key_of(&table, &key)))
                    .condition_expression(cond)
                    .set_expression_attribute_names(expr.names_param())
                    .set_expression_attribute_values(expr.values_param())
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
        };
        Ok(Some(item))
    }
}

#[async_trait]
impl Dynamo for SdkDynamo {
    async fn get(&self, table: &Table, key: &str, consistent: bool) -> Result<Option<Item>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&table.name)
            .set_key(Some(key_of(table, key)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "GetItem", e))?;
        Ok(out.item)
    }

    async fn put(&self, table: &Table, item: Item, cond: Cond) -> Result<(), AwsError> {
        let mut expr = Expr::new();
        let cond = render_condition(&mut expr, "PutItem", &cond)?;
        self.client
            .put_item()
            .table_name(&table.name)
            .set_item(Some(item))
            .set_condition_expression(cond)
            .set_expression_attribute_names(expr.names_param())
            .set_expression_attribute_values(expr.values_param())
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "PutItem", e))?;
        Ok(())
    }

    /// An empty `update` sends no UpdateItem (there is no valid empty UpdateExpression, and
    /// moto 5.2.5 answers HTTP 500 to an UpdateItem without one). Instead:
    /// - with a condition that is always true, it returns the current item read with a
    ///   consistent GetItem, or a `NotFound` error when there is no item (nothing is created);
    /// - with any other condition it is an `Invalid` error (the condition cannot be checked
    ///   without a write).
    async fn update(&self, table: &Table, key: &str, update: &Update, cond: Cond) -> Result<Item, AwsError> {
        const OP: &str = "UpdateItem";
        let mut expr = Expr::new();
        let Some(update_expr) = expr.update(update) else {
            if render_condition(&mut Expr::new(), OP, &cond)?.is_some() {
                return Err(invalid(
                    OP,
                    format!(
                        "an update with no changes cannot check a condition ({}={key} in {})",
                        table.key, table.name
                    ),
                ));
            }
            return self.get(table, key, true).await?.ok_or_else(|| {
                AwsError::new(
                    SERVICE,
                    OP,
                    crate::error::AwsErrorKind::NotFound,
                    format!("update with no changes: no item {}={key} in {}", table.key, table.name),
                )
            });
        };
        let new = self
            .send_update(table, key, expr, update_expr, &cond, ReturnValue::AllNew)
            .await?;
        // ALL_NEW always returns at least the key; fall back to it rather than fail.
        Ok(new.unwrap_or_else(|| key_of(table, key)))
    }

    async fn update_returning_old(
        &self,
        table: &Table,
        key: &str,
        update: &Update,
        cond: Cond,
    ) -> Result<Option<Item>, AwsError> {
        let mut expr = Expr::new();
        let Some(update_expr) = expr.update(update) else {
            return Err(invalid(
                "UpdateItem",
                format!("an update with no changes ({}={key} in {})", table.key, table.name),
            ));
        };
        self.send_update(table, key, expr, update_expr, &cond, ReturnValue::AllOld)
            .await
    }

    async fn delete(&self, table: &Table, key: &str, cond: Cond) -> Result<(), AwsError> {
        let mut expr = Expr::new();
        let cond = render_condition(&mut expr, "DeleteItem", &cond)?;
        self.client
            .delete_item()
            .table_name(&table.name)
            .set_key(Some(key_of(table, key)))
            .set_condition_expression(cond)
            .set_expression_attribute_names(expr.names_param())
            .set_expression_attribute_values(expr.values_param())
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "DeleteItem", e))?;
        Ok(())
    }

    async fn scan(&self, table: &Table) -> Result<Vec<Item>, AwsError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&table.name)
            .set_limit(self.page_limit)
            .into_paginator()
            .send();
        let mut items = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(SERVICE, "Scan", e))?;
            items.extend(page.items.unwrap_or_default());
        }
        Ok(items)
    }

    async fn query(&self, table: &Table, query: &Query) -> Result<Vec<Item>, AwsError> {
        let mut expr = Expr::new();
        let key_condition = expr.key_condition(query);
        let mut pages = self
            .client
            .query()
            .table_name(&table.name)
            .set_index_name(query.index.clone())
            .key_condition_expression(&key_condition)
            .set_expression_attribute_names(expr.names_param())
            .set_expression_attribute_values(expr.values_param())
            .scan_index_forward(true)
            .set_limit(self.page_limit)
            .into_paginator()
            .send();
        let mut items = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(SERVICE, "Query", e))?;
            items.extend(page.items.unwrap_or_default());
        }
        Ok(items)
    }

    /// Condition checks with `Cond::Always` are left out; an `Update` with no changes is
    /// an `Invalid` error (a transaction's Update needs an UpdateExpression). No call is
    /// made when nothing is left.
    async fn transact(&self, ops: Vec<TransactOp>) -> Result<(), AwsError> {
        let mut items = Vec::with_capacity(ops.len());
        for op in ops {
            if let Some(item) = SdkDynamo::transact_item(op)? {
                items.push(item);
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| {
                let reasons = match &e {
                    SdkError::ServiceError(ctx) => match ctx.err() {
                        TransactWriteItemsError::TransactionCanceledException(c) => Some(
                            c.cancellation_reasons()
                                .iter()
                                .map(|r| (r.code().map(str::to_string), r.message().map(str::to_string)))
                                .collect::<Vec<_>>(),
                        ),
                        _ => None,
                    },
                    _ => None,
                };
                let mut err = sdk_error(SERVICE, "TransactWriteItems", e);
                if let Some(reasons) = reasons {
                    err.message = format!(
                        "{} (cancellation reasons: {})",
                        err.message,
                        format_cancellation_reasons(&reasons)
                    );
                }
                err
            })?;
        Ok(())
    }

    async fn table_status(&self, table: &str) -> Result<String, AwsError> {
        const OP: &str = "DescribeTable";
        let out = self
            .client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(out
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_string())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    #[test]
    fn always_renders_no_condition_and_no_placeholders() {
        let mut e = Expr::new();
        assert_eq!(e.condition(&Cond::Always), Ok(None));
        assert_eq!(e.condition(&Cond::And(vec![Cond::Always, Cond::Always])), Ok(None));
        assert_eq!(
            e.condition(&Cond::Or(vec![Cond::eq_s("a", "x"), Cond::Always])),
            Ok(None)
        );
        assert!(e.names_param().is_none());
        assert!(e.values_param().is_none());
    }

    #[test]
    fn leaf_conditions_use_placeholders_only() {
        let mut e = Expr::new();
        assert_eq!(
            e.condition(&Cond::not_exists("userId")).unwrap().as_deref(),
            Some("attribute_not_exists(#n0)")
        );
        assert_eq!(
            e.condition(&Cond::exists("userId")).unwrap().as_deref(),
            Some("attribute_exists(#n0)")
        );
        assert_eq!(
            e.condition(&Cond::eq_s("status", "running")).unwrap().as_deref(),
            Some("#n1 = :v0")
        );
        assert_eq!(
            e.condition(&Cond::ne_s("status", "stopped")).unwrap().as_deref(),
            Some("#n1 <> :v1")
        );
        assert_eq!(
            e.condition(&Cond::Lt("startTime".into(), n("10"))).unwrap().as_deref(),
            Some("#n2 < :v2")
        );
        assert_eq!(
            e.condition(&Cond::in_s("status", &["a", "b"])).unwrap().as_deref(),
            Some("#n1 IN (:v3, :v4)")
        );
        assert_eq!(e.names().get("#n0").map(String::as_str), Some("userId"));
        assert_eq!(e.names().get("#n1").map(String::as_str), Some("status"));
        assert_eq!(e.names().get("#n2").map(String::as_str), Some("startTime"));
        assert_eq!(e.values().get(":v0"), Some(&s("running")));
        assert_eq!(e.values().get(":v4"), Some(&s("b")));
        assert_eq!(e.values().len(), 5);
    }

    #[test]
    fn junctions_parenthesize_nested_junctions_and_drop_always() {
        let mut e = Expr::new();
        let c = Cond::And(vec![
            Cond::exists("userId"),
            Cond::Always,
            Cond::Or(vec![Cond::eq_s("status", "a"), Cond::Ne("status".into(), s("b"))]),
        ]);
        assert_eq!(
            e.condition(&c).unwrap().as_deref(),
            Some("attribute_exists(#n0) AND (#n1 = :v0 OR #n1 <> :v1)")
        );
        // A one-element junction is just its element.
        let mut e = Expr::new();
        assert_eq!(
            e.condition(&Cond::And(vec![Cond::Always, Cond::not_exists("k")]))
                .unwrap()
                .as_deref(),
            Some("attribute_not_exists(#n0)")
        );
    }

    #[test]
    fn always_false_conditions_are_errors() {
        assert!(Expr::new().condition(&Cond::Or(vec![])).is_err());
        assert!(Expr::new().condition(&Cond::In("a".into(), vec![])).is_err());
        assert!(Expr::new()
            .condition(&Cond::And(vec![Cond::exists("a"), Cond::Or(vec![])]))
            .is_err());
    }

    #[test]
    fn update_renders_set_remove_add_clauses_in_order() {
        let mut e = Expr::new();
        let u = Update::new()
            .set_s("status", "running")
            .remove("taskArn")
            .add_n("sessionsStarted", "1")
            .set_n("updatedAt", 5)
            .remove("albRuleArn");
        assert_eq!(
            e.update(&u).as_deref(),
            Some("SET #n0 = :v0, #n3 = :v2 REMOVE #n1, #n4 ADD #n2 :v1")
        );
        assert_eq!(e.names().get("#n2").map(String::as_str), Some("sessionsStarted"));
        assert_eq!(e.values().get(":v1"), Some(&n("1")));
        assert_eq!(e.values().get(":v2"), Some(&n("5")));
    }

    #[test]
    fn update_and_condition_share_name_placeholders() {
        let mut e = Expr::new();
        let u = Update::new().set_s("status", "stopped");
        assert_eq!(e.update(&u).as_deref(), Some("SET #n0 = :v0"));
        assert_eq!(
            e.condition(&Cond::eq_s("status", "running")).unwrap().as_deref(),
            Some("#n0 = :v1")
        );
        assert_eq!(e.names().len(), 1);
    }

    #[test]
    fn empty_update_renders_nothing() {
        let mut e = Expr::new();
        assert_eq!(e.update(&Update::new()), None);
        assert!(e.names_param().is_none() && e.values_param().is_none());
    }

    #[test]
    fn key_conditions_render_hash_and_range() {
        let q = |range| Query {
            index: Some("licenseId-startTime-index".into()),
            hash_attr: "licenseId".into(),
            hash_value: s("byol-1"),
            range,
        };
        let mut e = Expr::new();
        assert_eq!(e.key_condition(&q(None)), "#n0 = :v0");
        let mut e = Expr::new();
        assert_eq!(
            e.key_condition(&q(Some(("startTime".into(), RangeCond::Between(n("1"), n("9")))))),
            "#n0 = :v0 AND #n1 BETWEEN :v1 AND :v2"
        );
        assert_eq!(e.values().get(":v2"), Some(&n("9")));
        let mut e = Expr::new();
        assert_eq!(
            e.key_condition(&q(Some(("startTime".into(), RangeCond::Lt(n("5")))))),
            "#n0 = :v0 AND #n1 < :v1"
        );
        let mut e = Expr::new();
        assert_eq!(
            e.key_condition(&q(Some(("startTime".into(), RangeCond::Ge(n("5")))))),
            "#n0 = :v0 AND #n1 >= :v1"
        );
    }

    #[test]
    fn reserved_words_and_odd_names_are_never_inlined() {
        let mut e = Expr::new();
        let c = Cond::And(vec![Cond::exists("status"), Cond::eq_s("#weird name", "v")]);
        let rendered = e.condition(&c).unwrap().unwrap();
        assert!(!rendered.contains("status") && !rendered.contains("weird"));
        assert_eq!(e.names().get("#n1").map(String::as_str), Some("#weird name"));
    }

    #[test]
    fn cancellation_reasons_are_listed_per_operation() {
        let r = vec![
            (
                Some("ConditionalCheckFailed".to_string()),
                Some("The conditional request failed".to_string()),
            ),
            (Some("None".to_string()), None),
            (None, None),
        ];
        assert_eq!(
            format_cancellation_reasons(&r),
            "[0: ConditionalCheckFailed (The conditional request failed), 1: None, 2: None]"
        );
    }

    #[test]
    fn transact_condition_check_that_always_holds_is_left_out() {
        let t = Table::new("t", "k");
        let op = TransactOp::ConditionCheck {
            table: t.clone(),
            key: "a".into(),
            cond: Cond::Always,
        };
        assert!(matches!(SdkDynamo::transact_item(op), Ok(None)));
        let op = TransactOp::Update {
            table: t,
            key: "a".into(),
            update: Update::new(),
            cond: Cond::Always,
        };
        let err = SdkDynamo::transact_item(op).err().map(|e| e.kind);
        assert_eq!(err, Some(crate::error::AwsErrorKind::Invalid));
    }
}
