//! Which attributes of an object an expression reads: a sync gives rules an object as a map of
//! every attribute it has, made for every object; when the rules of a connector only read some
//! attributes by name, the map needs only those (building it was the largest cost of rules in
//! a full sync, a few percent of the sync).
//!
//! The answer is conservative: any use of the object the names cannot be told from (passed to
//! a function, a name computed at run time, a method called on it, a module imported, a
//! function or closure defined in the expression, a loop that breaks with a value) means every
//! attribute.
use rhai::{ASTNode, Expr, Stmt, AST};
use std::collections::BTreeSet;

/// The attributes `ast` reads of variable `var`: `var.name`, `var?.name`, `var["name"]` and
/// `values(var, "name")`; `None` when it may read any.
pub(crate) fn reads_of(ast: &AST, var: &str) -> Option<BTreeSet<String>> {
    if ast.iter_functions().next().is_some() {
        return None;
    }
    let mut names = BTreeSet::new();
    let mut any = false;
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            // Rhai's walk does not go into the value a loop breaks with: what it reads is unknown.
            Some(ASTNode::Stmt(Stmt::Import(..) | Stmt::BreakLoop(Some(_), ..))) => any = true,
            Some(ASTNode::Expr(e @ Expr::Variable(x, ..))) if x.1.as_str() == var => match read_name(path, e) {
                // The list of each attribute's values is read through values().
                Some(n) if n != idflow_stdlib::VALUES_KEY => {
                    names.insert(n);
                }
                _ => any = true,
            },
            _ => {}
        }
        !any
    });
    (!any).then_some(names)
}

/// The name the expression around variable `var` (the last of `path`) reads of it, if that is
/// all it does with it.
fn read_name(path: &[ASTNode], var: &Expr) -> Option<String> {
    let parent = path.len().checked_sub(2).and_then(|i| path.get(i))?;
    match parent {
        ASTNode::Expr(Expr::Dot(b, ..)) if std::ptr::eq(&b.lhs, var) => chain_head(&b.rhs, |e| match e {
            Expr::Property(p, _) => Some(p.2.to_string()),
            _ => None,
        }),
        ASTNode::Expr(Expr::Index(b, ..)) if std::ptr::eq(&b.lhs, var) => chain_head(&b.rhs, |e| match e {
            Expr::StringConstant(s, _) => Some(s.to_string()),
            _ => None,
        }),
        ASTNode::Expr(Expr::FnCall(f, _)) | ASTNode::Stmt(Stmt::FnCall(f, _)) => values_of(f, var),
        _ => None,
    }
}

/// The name a `.` or `[]` right after the variable reads: `rhs` itself, or the head of a
/// chain that goes on (`source.cn[0]`, `source["cn"].len()`); `name` tells it from the node.
fn chain_head(rhs: &Expr, name: impl Fn(&Expr) -> Option<String>) -> Option<String> {
    match rhs {
        Expr::Dot(c, ..) | Expr::Index(c, ..) => name(&c.lhs),
        e => name(e),
    }
}

/// `values(var, "name")`: the name.
fn values_of(f: &rhai::FnCallExpr, var: &Expr) -> Option<String> {
    if f.name != "values" || !f.namespace.is_empty() {
        return None;
    }
    match f.args.as_slice() {
        [first, Expr::StringConstant(s, _)] if std::ptr::eq(first, var) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::reads_of;

    fn reads(src: &str) -> Option<Vec<String>> {
        let engine = crate::RuleEngine::new(&[], &crate::Limits::default());
        let ast = engine.compile(&["source"], src).expect("compiles");
        reads_of(&ast, "source").map(|s| s.into_iter().collect())
    }

    fn names(n: &[&str]) -> Option<Vec<String>> {
        Some(n.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn attributes_read_by_name_are_found() {
        assert_eq!(reads("source.mail"), names(&["mail"]));
        assert_eq!(reads("lower(source.mail)"), names(&["mail"]));
        assert_eq!(reads(r#"source["employee-id"]"#), names(&["employee-id"]));
        assert_eq!(reads("source?.title.len()"), names(&["title"]));
        assert_eq!(reads(r#"source["cn"][0]"#), names(&["cn"]));
        assert_eq!(reads(r#"values(source, "member")"#), names(&["member"]));
        assert_eq!(reads(r#"`${source.givenName} ${source.sn}`"#), names(&["givenName", "sn"]));
        assert_eq!(
            reads(r#"if source.displayName != () { source.displayName } else { source.givenName + " " + source.sn }"#),
            names(&["displayName", "givenName", "sn"])
        );
        assert_eq!(reads(r#""constant""#), names(&[]));
        // Folded to a constant name when compiled.
        assert_eq!(reads(r#"source["m" + "ail"]"#), names(&["mail"]));
    }

    #[test]
    fn any_other_use_of_the_object_may_read_any_attribute() {
        for src in [
            "source",
            "source.keys()",
            "source.len()",
            "let s = source; s.mail",
            "let n = \"mail\"; source[n]",
            "let n = \"member\"; values(source, n)",
            "type_of(source)",
            "source.values(\"member\")",
            "fn values(o, n) { o.keys() } values(source, \"x\")",
            "import \"helpers\" as h; source.mail",
            "loop { break source.mail }",
            "loop { break source }",
            "source[\"@values\"][\"cn\"]",
        ] {
            assert_eq!(reads(src), None, "{src}");
        }
    }
}
