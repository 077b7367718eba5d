//! The structure stays what docs/architecture.md says: every `crate::X` path in `src/` is an
//! allowed dependency (or a listed, still-real exception), the allowed graph has no cycle, SQL
//! lives only under `src/store/`, and the store hands out no pool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/smtp/session.rs` → `smtp`, `src/config.rs` → `config`; the crate roots belong to nobody.
fn top_module(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root().join("src")).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The file's lines that are not comments and not inside a `#[cfg(test)]` item.
fn production_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            // Skip the attributed item: up to the line where its braces balance (or its `;`).
            let mut depth = 0i32;
            let mut opened = false;
            for (_, item) in lines.by_ref() {
                let code = item.split("//").next().unwrap_or("");
                depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
                opened |= code.contains('{');
                if (opened && depth <= 0) || (!opened && code.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push((n + 1, line.split(" //").next().unwrap_or(line).to_string()));
    }
    out
}

/// Top-level modules a piece of code names, with the byte offset of each: `crate::x::…` and each
/// name at the top level of `crate::{x, y::{z, w}}`, which may span lines.
fn named_modules(code: &str) -> Vec<(usize, String)> {
    let path = Regex::new(r"\bcrate::(\{|[a-z_]+)").unwrap();
    let mut names = Vec::new();
    for c in path.captures_iter(code) {
        let at = c.get(0).unwrap().start();
        if &c[1] != "{" {
            names.push((at, c[1].to_string()));
            continue;
        }
        let (mut depth, mut item) = (0, String::new());
        for ch in code[c.get(1).unwrap().end()..].chars() {
            match ch {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 && ch == ',' {
                names.push((at, std::mem::take(&mut item)));
            } else {
                item.push(ch);
            }
        }
        names.push((at, item));
    }
    names
        .into_iter()
        .map(|(at, item)| (at, item.trim().split("::").next().unwrap_or("").trim().to_string()))
        .filter(|(_, name)| !name.is_empty() && name != "self" && !name.starts_with('{'))
        .collect()
}

fn cells(line: &str) -> Vec<String> {
    line.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect()
}

fn ticked(cell: &str) -> Vec<String> {
    Regex::new(r"`([a-z_]+)`").unwrap().captures_iter(cell).map(|c| c[1].to_string()).collect()
}

/// Rows under a markdown heading: the table's body lines, split into cells.
fn table_under(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let section = doc.split(heading).nth(1).unwrap_or_else(|| panic!("docs/architecture.md has no {heading:?}"));
    let section = section.split("\n## ").next().unwrap();
    section.lines().filter(|l| l.starts_with('|')).skip(2).map(cells).collect()
}

struct Rule {
    allowed: BTreeMap<String, Option<BTreeSet<String>>>,
    exceptions: BTreeSet<(String, String)>,
}

fn rule() -> Rule {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let mut allowed = BTreeMap::new();
    for row in table_under(&doc, "## Modules and whom they may use") {
        let may_use = if row[2] == "anything" { None } else { Some(ticked(&row[2]).into_iter().collect()) };
        for module in ticked(&row[0]) {
            allowed.insert(module, may_use.clone());
        }
    }
    let exceptions =
        table_under(&doc, "## Known exceptions").into_iter().map(|row| (ticked(&row[0]).remove(0), ticked(&row[1]).remove(0))).collect();
    Rule { allowed, exceptions }
}

/// Every (from, to) edge in `src/` with the places that make it.
fn edges() -> BTreeMap<(String, String), Vec<String>> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = top_module(&file) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = production_lines(&text);
        let code: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        for (at, to) in named_modules(&code) {
            if to != from {
                let n = lines[code[..at].matches('\n').count()].0;
                let place = format!("{}:{n}", file.strip_prefix(root()).unwrap().display());
                edges.entry((from.clone(), to)).or_default().push(place);
            }
        }
    }
    edges
}

#[test]
fn every_module_is_in_the_rule_and_every_rule_names_a_module() {
    let rule = rule();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(f)).collect();
    let documented: BTreeSet<String> = rule.allowed.keys().cloned().collect();
    assert_eq!(modules, documented, "top-level modules of src/ vs the table in docs/architecture.md");
    for (module, may_use) in &rule.allowed {
        for target in may_use.iter().flatten() {
            assert!(documented.contains(target), "{module} may use {target:?}, which is not a module");
        }
    }
}

#[test]
fn the_allowed_graph_has_no_cycle() {
    let rule = rule();
    // Depth-first search over the allowed edges of the constrained modules.
    fn visit(m: &str, rule: &Rule, path: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("the rule has a cycle: {} → {m}", path[at..].join(" → "));
        }
        path.push(m.to_string());
        for next in rule.allowed.get(m).cloned().flatten().unwrap_or_default() {
            visit(&next, rule, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in rule.allowed.keys() {
        if rule.allowed[m].is_some() {
            visit(m, &rule, &mut Vec::new(), &mut done);
        }
    }
}

#[test]
fn every_dependency_in_src_is_allowed_or_a_listed_exception() {
    let rule = rule();
    let edges = edges();
    let mut broken = Vec::new();
    for ((from, to), places) in &edges {
        let allowed = match rule.allowed.get(from) {
            Some(None) => true,
            Some(Some(set)) => set.contains(to),
            None => false,
        };
        if !allowed && !rule.exceptions.contains(&(from.clone(), to.clone())) {
            broken.push(format!("{from} → {to}: {}", places.join(", ")));
        }
    }
    assert!(broken.is_empty(), "dependencies that docs/architecture.md does not allow:\n{}", broken.join("\n"));
    let stale: Vec<_> = rule.exceptions.iter().filter(|e| !edges.contains_key(*e)).collect();
    assert!(stale.is_empty(), "exceptions in docs/architecture.md that no longer exist (delete them): {stale:?}");
}

#[test]
fn sql_lives_only_under_src_store() {
    let sql = Regex::new(
        r#"(?x)"\s*(SELECT\s[^"]*\sFROM\s|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|BEGIN(\s+IMMEDIATE)?"|CREATE\s+(TABLE|INDEX)\s|PRAGMA\s)"#,
    )
    .unwrap();
    let driver = Regex::new(r"\b(sqlx|rusqlite)::|\bstore(\(\))?\.pool\b|\bSqlitePool\b").unwrap();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut found = Vec::new();
    for file in files {
        if file.starts_with(root().join("src/store")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in production_lines(&text) {
            if sql.is_match(&line) || driver.is_match(&line) {
                found.push(format!("{}:{n}: {}", file.strip_prefix(root()).unwrap().display(), line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "SQL or database access outside src/store/:\n{}", found.join("\n"));
}

#[test]
fn what_only_sqlite_understands_is_in_store_sqlite() {
    let sqlite_only =
        Regex::new(r"(?i)\bPRAGMA\b|BEGIN\s+IMMEDIATE|json_group_array|json_object\(|INSERT\s+OR\s+(IGNORE|REPLACE)").unwrap();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("src/store/sqlite.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in production_lines(&text) {
            if sqlite_only.is_match(&line) {
                found.push(format!("{}:{n}: {}", file.strip_prefix(root()).unwrap().display(), line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "SQLite-only statements outside src/store/sqlite.rs:\n{}", found.join("\n"));
}

#[test]
fn the_store_hands_out_no_pool() {
    let text = std::fs::read_to_string(root().join("src/store/mod.rs")).unwrap();
    let public_pool = Regex::new(r"pub(\([^)]*\))?\s+(pool\s*:|fn\s+pool\b)").unwrap();
    assert!(!public_pool.is_match(&text), "src/store/mod.rs exposes the pool");
}

#[test]
fn the_checks_see_what_they_claim() {
    // The parser itself: nested and multi-line groups, a test module and a comment.
    let code = "use crate::{store::{A, B}, access,\n    self};\nx(crate::net::f);";
    let names: Vec<String> = named_modules(code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["store", "access", "net"]);
    let lines = production_lines("use crate::a;\n// crate::b\n#[cfg(test)]\nmod tests {\n    use crate::c;\n}\nuse crate::d;\n");
    let kept: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(kept, ["use crate::a;", "use crate::d;"]);
}
