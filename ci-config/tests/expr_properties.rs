//! Property tests of the expression engine: printing round-trips, and no input panics.

use ci_config::expr::{
    CmpOp, Contexts, Expr, ExprKind, Expression, Function, Literal, ParseOptions, Value,
};
use proptest::prelude::*;

const CONTEXTS: &[&str] = &["github", "env", "matrix"];

fn node(kind: ExprKind) -> Expr {
    Expr {
        kind,
        start: 0,
        end: 0,
    }
}

fn literal() -> impl Strategy<Value = Expr> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        // Finite numbers and infinities; NaN never equals itself, so it cannot round-trip by ==.
        prop_oneof![
            (-1e6f64..1e6).prop_map(|n| (n * 1000.0).round() / 1000.0),
            Just(f64::INFINITY),
            Just(0.5),
            Just(1e300),
        ]
        .prop_map(Literal::Number),
        "[a-zA-Z0-9 '{}_.-]{0,8}".prop_map(Literal::String),
    ]
    .prop_map(|l| node(ExprKind::Literal(l)))
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        literal(),
        prop::sample::select(CONTEXTS).prop_map(|c| node(ExprKind::Context(c.to_owned()))),
    ]
}

fn ast() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 40, 4, |inner| {
        let ops = prop::sample::select(vec![
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ]);
        prop_oneof![
            (inner.clone(), "[a-z_][a-z0-9_-]{0,6}")
                .prop_map(|(t, p)| node(ExprKind::Property(Box::new(t), p))),
            (inner.clone(), inner.clone())
                .prop_map(|(t, i)| node(ExprKind::Index(Box::new(t), Box::new(i)))),
            inner
                .clone()
                .prop_map(|t| node(ExprKind::Wildcard(Box::new(t)))),
            inner.clone().prop_map(|t| node(ExprKind::Not(Box::new(t)))),
            (ops, inner.clone(), inner.clone()).prop_map(|(op, l, r)| node(ExprKind::Compare(
                op,
                Box::new(l),
                Box::new(r)
            ))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| node(ExprKind::And(v))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| node(ExprKind::Or(v))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| node(ExprKind::Call(Function::Contains, vec![a, b]))),
            prop::collection::vec(inner, 1..4)
                .prop_map(|v| node(ExprKind::Call(Function::Format, v))),
        ]
    })
}

fn contexts() -> Contexts {
    let mut c = Contexts::new();
    c.insert(
        "github",
        Value::from_json(&serde_json::json!({"ref": "refs/heads/main", "event": {"commits": [{"id": 1}, {"id": 2}]}})),
    );
    c.insert("env", Value::from_json(&serde_json::json!({"A": "1"})));
    c.insert(
        "matrix",
        Value::from_json(&serde_json::json!({"os": ["a", "b"]})),
    );
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn printed_trees_parse_back_to_the_same_tree(tree in ast()) {
        let printed = tree.to_string();
        let options = ParseOptions { contexts: CONTEXTS, ..Default::default() };
        let reparsed = Expression::parse(&printed, &options);
        let reparsed = reparsed.map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(reparsed.tree(), Some(&tree), "printed as {}", printed);
    }

    #[test]
    fn evaluation_never_panics(src in "[a-z()\\[\\]'.,*!=<>&| 0-9{}]{0,40}") {
        let options = ParseOptions { contexts: CONTEXTS, functions: Function::STATUS };
        if let Ok(e) = Expression::parse(&src, &options) {
            let _ = e.evaluate(&contexts());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let options = ParseOptions { contexts: CONTEXTS, ..Default::default() };
        if let Ok(e) = Expression::parse(&src, &options) {
            let _ = e.evaluate(&contexts());
        }
    }

    #[test]
    fn generated_trees_evaluate_without_panicking(tree in ast()) {
        let options = ParseOptions { contexts: CONTEXTS, ..Default::default() };
        if let Ok(e) = Expression::parse(&tree.to_string(), &options) {
            let _ = e.evaluate(&contexts());
        }
    }
}
