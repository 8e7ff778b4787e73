//! `reprise call`: any exported function, its arguments and results in WAVE
//! (the WebAssembly Value Encoding, as `wasmtime run --invoke` uses).
//!
//! Everything that can be wrong with the user's text (an unknown name, bad
//! WAVE, an argument of the wrong type, the wrong number of arguments) is
//! found against the component's types before any instance is created, and
//! reported naming the export, the parameter and the type expected.

use crate::front::serial::{Serial, SerialOptions};
use crate::pool::Bind;
use crate::pool::InstanceManager;
use crate::runtime::instance::InstanceState;
use std::ops::Range;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::wasm_wave::parser::ParserError;
use wasmtime::component::wasm_wave::untyped::UntypedFuncCall;
use wasmtime::component::wasm_wave::wasm::{DisplayType, WasmType, WasmTypeKind};
use wasmtime::component::wasm_wave::{self, ast::Node};
use wasmtime::component::{Component, ComponentExportIndex, Func, Type, Val};

/// Separates an interface from a function in an export path, as in the
/// component model's own naming (`my:pkg/iface#f`).
const INTERFACE_SEPARATOR: char = '#';

/// A call the user asked for, checked against the component's types.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The export path as the user wrote it: `f` or `my:pkg/iface#f`.
    pub name: String,
    index: ComponentExportIndex,
    results: usize,
    args: Vec<Val>,
}

/// Why a call's text does not fit the component.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("expected a call such as `name(arg, ...)`, got `{0}`")]
    NotACall(String),
    #[error("no export named `{name}`; available: {available}")]
    UnknownExport { name: String, available: String },
    #[error(
        "`{name}` cannot be called with `reprise call`: its parameter `{param}` has type {ty}, \
         which has no WAVE value"
    )]
    NoWaveValue {
        name: String,
        param: String,
        ty: String,
    },
    #[error("`{name}` is a function of several exported interfaces: {candidates}; name one")]
    Ambiguous { name: String, candidates: String },
    #[error("`{name}` is an interface, not a function; its functions: {functions}")]
    NotAFunction { name: String, functions: String },
    #[error("invalid WAVE in the arguments of `{name}`: {message}")]
    Malformed { name: String, message: String },
    #[error("`{name}` takes {expected}, got {got} argument(s)")]
    Arity {
        name: String,
        expected: String,
        got: usize,
    },
    #[error(
        "argument {} (`{}`) of `{}`: expected {}, got `{}`: {}",
        .0.position, .0.param, .0.name, .0.ty, .0.text, .0.message
    )]
    BadArgument(Box<BadArgument>),
}

/// An argument that is valid WAVE but not of its parameter's type. Boxed in
/// [`InvokeError`], which would otherwise be as large as this on every path.
#[derive(Debug)]
pub struct BadArgument {
    pub name: String,
    /// From 1, as users count.
    pub position: usize,
    pub param: String,
    pub ty: String,
    /// The argument as the user wrote it.
    pub text: String,
    pub message: String,
}

/// Splits `name(args)` into the export path and the parenthesized
/// arguments. The path may contain anything but `(` (interface names carry
/// `:`, `/`, `@` and `#`), so it ends at the first `(`.
pub fn split_call(text: &str) -> Result<(&str, &str), InvokeError> {
    let text = text.trim();
    let not_a_call = || InvokeError::NotACall(text.to_string());
    let open = text.find('(').ok_or_else(not_a_call)?;
    let (name, args) = text.split_at(open);
    let name = name.trim_end();
    if name.is_empty() || !args.ends_with(')') {
        return Err(not_a_call());
    }
    Ok((name, args))
}

/// Parses `text` (`name(args)`) against the exports of `component`.
pub fn parse_invocation(
    component: &Component,
    engine: &Engine,
    text: &str,
) -> Result<Invocation, InvokeError> {
    let (name, args) = split_call(text)?;
    let (index, ty) = find_function(component, engine, name)?;
    let args = parse_args(name, &ty, args)?;
    Ok(Invocation {
        name: name.to_string(),
        index,
        results: ty.results().len(),
        args,
    })
}

/// Resolves an export path to a function: `f` at the top level, or
/// `iface#f` inside an exported instance.
fn find_function(
    component: &Component,
    engine: &Engine,
    name: &str,
) -> Result<(ComponentExportIndex, ComponentFunc), InvokeError> {
    let unknown = || InvokeError::UnknownExport {
        name: name.to_string(),
        available: function_list(component, engine),
    };
    let in_interface = |interface: &str, function: &str| {
        let (_, instance) = component.get_export(None, interface)?;
        component.get_export(Some(&instance), function)
    };
    let found = match name.rsplit_once(INTERFACE_SEPARATOR) {
        Some((interface, function)) => {
            in_interface(&exported_interface(component, engine, interface), function)
        }
        None => match component.get_export(None, name) {
            Some(found) => Some(found),
            None => match interfaces_with_function(component, engine, name).as_slice() {
                [] => None,
                [interface] => in_interface(interface, name),
                several => {
                    return Err(InvokeError::Ambiguous {
                        name: name.to_string(),
                        candidates: several
                            .iter()
                            .map(|interface| format!("`{interface}{INTERFACE_SEPARATOR}{name}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            },
        },
    };
    match found.ok_or_else(unknown)? {
        (ComponentItem::ComponentFunc(ty), index) => Ok((index, ty)),
        (ComponentItem::ComponentInstance(instance), _) => Err(InvokeError::NotAFunction {
            name: name.to_string(),
            functions: instance
                .exports(engine)
                .filter_map(|(function, item)| match item.ty {
                    ComponentItem::ComponentFunc(ty) => Some(signature(
                        &format!("{name}{INTERFACE_SEPARATOR}{function}"),
                        &ty,
                    )),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
        _ => Err(unknown()),
    }
}

/// The full name of the exported interface `written` names. Besides the
/// full name (`my:pkg/iface@1.0.0`), a user may write it without its version
/// (`my:pkg/iface`) or without its package either (`iface`), as long as one
/// exported interface fits (a top-level function of that name does not
/// count); otherwise `written` is kept, to be reported as unknown.
fn exported_interface(component: &Component, engine: &Engine, written: &str) -> String {
    if let Some((ComponentItem::ComponentInstance(_), _)) = component.get_export(None, written) {
        return written.to_string();
    }
    let ty = component.component_type();
    let mut fitting = ty.exports(engine).filter_map(|(name, item)| {
        let ComponentItem::ComponentInstance(_) = item.ty else {
            return None;
        };
        let unversioned = name.split_once('@').map_or(name, |(base, _)| base);
        let bare = unversioned
            .rsplit_once('/')
            .map_or(unversioned, |(_, bare)| bare);
        (written == unversioned || written == bare).then_some(name)
    });
    match (fitting.next(), fitting.next()) {
        (Some(only), None) => only.to_string(),
        _ => written.to_string(),
    }
}

/// The exported interfaces that have a function named `function`: a bare
/// function name stands for the one interface function of that name when
/// no top-level export has it.
fn interfaces_with_function(component: &Component, engine: &Engine, function: &str) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .filter(|(_, item)| match &item.ty {
            ComponentItem::ComponentInstance(instance) => {
                instance.exports(engine).any(|(name, item)| {
                    name == function && matches!(item.ty, ComponentItem::ComponentFunc(_))
                })
            }
            _ => false,
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Every function export, top-level and inside exported interfaces, with
/// its signature: what an unknown name is corrected with.
pub fn function_list(component: &Component, engine: &Engine) -> String {
    let mut functions = Vec::new();
    for (name, item) in component.component_type().exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(ty) => functions.push(signature(name, &ty)),
            ComponentItem::ComponentInstance(instance) => {
                for (function, item) in instance.exports(engine) {
                    if let ComponentItem::ComponentFunc(ty) = item.ty {
                        functions.push(signature(
                            &format!("{name}{INTERFACE_SEPARATOR}{function}"),
                            &ty,
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if functions.is_empty() {
        "none (the component exports no functions)".to_string()
    } else {
        functions.join(", ")
    }
}

/// `name(p: type, ...) -> type`, in WAVE's type syntax.
fn signature(name: &str, ty: &ComponentFunc) -> String {
    let params: Vec<(&str, Type)> = ty.params().collect();
    let mut out = format!("{name}({})", param_list(&params));
    let results: Vec<String> = ty.results().map(|ty| type_name(&ty)).collect();
    if !results.is_empty() {
        out = format!("{out} -> {}", results.join(", "));
    }
    out
}

/// A type in WAVE's syntax. WAVE has no values of resources, futures or
/// streams and no names for them; they are named as in WIT, so a listing
/// shows what such a function takes (and why it cannot be called here).
fn type_name(ty: &Type) -> String {
    match ty {
        Type::Own(_) => "own<resource>".to_string(),
        Type::Borrow(_) => "borrow<resource>".to_string(),
        Type::Future(_) => "future".to_string(),
        Type::Stream(_) => "stream".to_string(),
        Type::ErrorContext => "error-context".to_string(),
        _ => DisplayType(ty).to_string(),
    }
}

/// `a: u32, b: option<string>`.
fn param_list(params: &[(&str, Type)]) -> String {
    params
        .iter()
        .map(|(name, ty)| format!("{name}: {}", type_name(ty)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses the parenthesized WAVE arguments `args` against `ty`, one
/// parameter at a time so an error can name the parameter. As in WAVE
/// function calls, trailing `option` arguments may be left out (`none`).
fn parse_args(name: &str, ty: &ComponentFunc, args: &str) -> Result<Vec<Val>, InvokeError> {
    // WAVE's own function-name grammar has no `#`, so the arguments are
    // parsed behind a placeholder name.
    let source = format!("f{args}");
    let malformed = |e: ParserError| InvokeError::Malformed {
        name: name.to_string(),
        message: parse_error_message(&e, &source, None),
    };
    let call = UntypedFuncCall::parse(&source).map_err(malformed)?;
    let nodes: Vec<&Node> = match call.params_node() {
        Some(node) => node.as_tuple().map_err(malformed)?.collect(),
        None => Vec::new(),
    };
    let params: Vec<(&str, Type)> = ty.params().collect();
    if let Some((param, ty)) = params
        .iter()
        .find(|(_, ty)| ty.kind() == WasmTypeKind::Unsupported)
    {
        return Err(InvokeError::NoWaveValue {
            name: name.to_string(),
            param: (*param).to_string(),
            ty: type_name(ty),
        });
    }
    let required = params
        .iter()
        .rposition(|(_, ty)| ty.kind() != WasmTypeKind::Option)
        .map_or(0, |last| last + 1);
    if nodes.len() > params.len() || nodes.len() < required {
        return Err(InvokeError::Arity {
            name: name.to_string(),
            expected: describe_params(&params),
            got: nodes.len(),
        });
    }
    params
        .iter()
        .enumerate()
        .map(|(i, (param, ty))| match nodes.get(i) {
            Some(node) => node.to_wasm_value::<Val>(ty, &source).map_err(|e| {
                InvokeError::BadArgument(Box::new(BadArgument {
                    name: name.to_string(),
                    position: i + 1,
                    param: (*param).to_string(),
                    ty: type_name(ty),
                    text: source[node.span()].to_string(),
                    message: parse_error_message(&e, &source, Some(node.span())),
                }))
            }),
            None => Ok(Val::Option(None)),
        })
        .collect()
}

/// `1 argument (p: point)` / `2 arguments (a: u32, b: option<string>)`.
fn describe_params(params: &[(&str, Type)]) -> String {
    match params.len() {
        0 => "no arguments".to_string(),
        1 => format!("1 argument ({})", param_list(params)),
        n => format!("{n} arguments ({})", param_list(params)),
    }
}

/// A WAVE error in words, pointing at the offending text instead of a byte
/// range; no pointer when that text is `whole`, which the caller shows.
fn parse_error_message(error: &ParserError, source: &str, whole: Option<Range<usize>>) -> String {
    let what = match (std::error::Error::source(error), error.detail()) {
        (Some(cause), _) => cause.to_string(),
        (None, Some(detail)) => format!("{}: {detail}", error.kind()),
        (None, None) => error.kind().to_string(),
    };
    if whole == Some(error.span()) {
        return what;
    }
    match source.get(error.span()).filter(|text| !text.is_empty()) {
        Some(text) => format!("{what} at `{text}`"),
        None => format!("{what} at the end"),
    }
}

impl Invocation {
    /// Binds the function on each new instance.
    pub fn bind(&self) -> Bind<Func> {
        let index = self.index;
        Arc::new(move |store, instance| {
            instance
                .get_func(store, index)
                .ok_or_else(|| wasmtime::format_err!("the instance lacks the export"))
        })
    }

    /// Calls the function once on `func`'s instance; the results in WAVE.
    pub async fn call(
        &self,
        store: &mut wasmtime::Store<InstanceState>,
        func: &Func,
    ) -> wasmtime::Result<String> {
        let mut results = vec![Val::Bool(false); self.results];
        func.call_async(&mut *store, &self.args, &mut results)
            .await?;
        format_results(&results).map_err(wasmtime::Error::from_anyhow)
    }
}

/// Results as one WAVE line: the value itself for one result, `()` for none,
/// a parenthesized list for several.
pub fn format_results(results: &[Val]) -> anyhow::Result<String> {
    let values = results
        .iter()
        .map(|value| {
            wasm_wave::to_string(value)
                .map_err(|e| anyhow::anyhow!("cannot print the result in WAVE: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(match values.as_slice() {
        [one] => one.clone(),
        all => format!("({})", all.join(", ")),
    })
}

/// Calls `invocation` `repeat` times on policy-chosen instances, handing
/// each result line to `print` as it comes. Stops at the first failing call.
pub async fn call_repeatedly(
    manager: Arc<InstanceManager>,
    invocation: &Invocation,
    repeat: u64,
    options: SerialOptions,
    mut print: impl FnMut(&str),
) -> anyhow::Result<()> {
    let mut serial = Serial::new(manager, invocation.bind(), options);
    let result = async {
        serial.warm_up().await?;
        for call in 1..=repeat {
            let served = serial
                .call(async |store, func| invocation.call(store, func).await)
                .await?;
            match served.result {
                Ok(line) => print(&line),
                Err(failure) => anyhow::bail!(
                    "call {call} of `{}` (instance {}) {failure}",
                    invocation.name,
                    served.instance
                ),
            }
        }
        Ok(())
    }
    .await;
    serial.finish().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_splits_at_its_first_parenthesis() {
        assert_eq!(split_call("f()").unwrap(), ("f", "()"));
        assert_eq!(
            split_call(" my:pkg/iface@0.1.0#f(1, \"(x)\") ").unwrap(),
            ("my:pkg/iface@0.1.0#f", "(1, \"(x)\")")
        );
        assert_eq!(split_call("f ({x: 1})").unwrap(), ("f", "({x: 1})"));
    }

    #[test]
    fn text_without_a_call_is_rejected() {
        for text in ["f", "", "(1)", "f(1", "f)"] {
            assert!(
                matches!(split_call(text), Err(InvokeError::NotACall(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn results_print_as_one_wave_line() {
        assert_eq!(format_results(&[]).unwrap(), "()");
        assert_eq!(format_results(&[Val::U32(7)]).unwrap(), "7");
        assert_eq!(
            format_results(&[Val::String("a\"b".into()), Val::Bool(true)]).unwrap(),
            "(\"a\\\"b\", true)"
        );
        let option = Val::Option(Some(Box::new(Val::String("x".into()))));
        assert_eq!(format_results(&[option]).unwrap(), "some(\"x\")");
    }

    #[test]
    fn parameters_are_described_with_their_types() {
        assert_eq!(describe_params(&[]), "no arguments");
        assert_eq!(describe_params(&[("x", Type::U32)]), "1 argument (x: u32)");
        assert_eq!(
            describe_params(&[("a", Type::String), ("b", Type::Bool)]),
            "2 arguments (a: string, b: bool)"
        );
    }
}
