//! The VMs: one process-wide engine, modules compiled once per content
//! (a reload naming an unchanged file reuses the compiled code), and per
//! plugin a pool of instances — proxy-wasm "VMs" — each holding its root
//! context and the streams' contexts, as in Envoy's one VM per worker.
//!
//! A callback locks its VM only while it runs (never across the upstream
//! call), with a fuel budget and the memory cap. A VM that fails is
//! dropped and replaced by a fresh one; streams that had a context in it
//! get a new context in the new VM for their remaining callbacks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Instance, InstancePre, Linker, Module, Store, Trap, TypedFunc};

use super::abi;
use super::host::{Host, Limits};
use super::shared::Shared;
use super::stream::StreamState;

/// Why a callback or an instantiation failed.
#[derive(Debug)]
pub struct Failure {
    /// `trap`, `fuel`, `memory`, `abi` or `instantiate`: the metric's label.
    pub kind: &'static str,
    pub message: String,
}

impl Failure {
    pub fn abi(message: impl Into<String>) -> Failure {
        Failure {
            kind: "abi",
            message: message.into(),
        }
    }
}

/// How often the engine's epoch advances: the grain of callback deadlines.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(5);

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        // Fuel counts instructions, not their cost (a `memory.copy` of
        // megabytes is one): a deadline in time bounds a callback too.
        config.epoch_interruption(true);
        // One memory per module: the cap is per VM, not per memory.
        config.wasm_multi_memory(false);
        // A filter's stack is part of the worker thread's: 256 KiB of it at most.
        config.max_wasm_stack(256 * 1024);
        let engine = Engine::new(&config).expect("the wasmtime configuration is valid");
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("switchyard-wasm-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .expect("the epoch thread starts");
        engine
    })
}

fn linker() -> Result<&'static Linker<Host>, String> {
    static LINKER: OnceLock<Result<Linker<Host>, String>> = OnceLock::new();
    LINKER
        .get_or_init(|| super::host::linker(engine()).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(Clone::clone)
}

/// `bytes` (a binary module, or WebAssembly text) compiled, from the
/// process's cache when the same bytes were compiled before.
pub fn compile(bytes: &[u8]) -> Result<Module, String> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Module>>> = OnceLock::new();
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(module) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&digest) {
        return Ok(module.clone());
    }
    let module = Module::new(engine(), bytes).map_err(|e| format!("{e:#}"))?;
    if !abi::ABI_VERSIONS
        .iter()
        .any(|v| module.get_export(v).is_some())
    {
        return Err(format!(
            "the module is not a proxy-wasm filter of ABI 0.2.x: it exports none of {}",
            abi::ABI_VERSIONS.join(", ")
        ));
    }
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    // Old versions' modules are let go past a bound (they are cheap to recompile).
    if cache.len() >= 64 {
        cache.clear();
    }
    cache.insert(digest, module.clone());
    Ok(module)
}

/// The limits every callback of a plugin runs under.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub fuel: u64,
    /// Epoch ticks a callback may run ([`EPOCH_TICK`] each).
    pub ticks: u64,
    pub max_memory: usize,
}

/// A stream callback.
#[derive(Clone, Copy, Debug)]
pub enum Callback {
    RequestHeaders {
        count: usize,
        end: bool,
    },
    RequestBody {
        size: usize,
        end: bool,
    },
    ResponseHeaders {
        count: usize,
        end: bool,
    },
    ResponseBody {
        size: usize,
        end: bool,
    },
    HttpCallResponse {
        token: u32,
        headers: usize,
        body: usize,
        trailers: usize,
    },
    Log,
    Done,
}

/// A stream's place in the pool: its VM, that VM's generation, its context.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    vm: usize,
    generation: u64,
    context: i32,
}

/// A plugin's VMs.
pub struct Pool {
    /// The module with its imports resolved, once: each VM (and each
    /// replacement) is instantiated from it.
    pre: InstancePre<Host>,
    shared: Arc<Shared>,
    budget: Budget,
    slots: Box<[Mutex<Slot>]>,
    next: AtomicUsize,
}

struct Slot {
    vm: Option<Vm>,
    generation: u64,
}

struct Vm {
    store: Store<Host>,
    exports: Exports,
    root: i32,
    next_context: i32,
}

/// `proxy_on_http_call_response`'s: context, token, headers, body size, trailers.
type CallResponseArgs = (i32, i32, i32, i32, i32);

struct Exports {
    context_create: TypedFunc<(i32, i32), ()>,
    request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    http_call_response: Option<TypedFunc<CallResponseArgs, ()>>,
    log: Option<TypedFunc<i32, ()>>,
    done: Option<TypedFunc<i32, i32>>,
    delete: Option<TypedFunc<i32, ()>>,
}

/// Which callbacks the module has: the host skips the others (and reads
/// no body for a filter without body callbacks).
#[derive(Clone, Copy, Debug, Default)]
pub struct Exported {
    pub request_body: bool,
    pub response_headers: bool,
    pub response_body: bool,
    pub log: bool,
}

impl Pool {
    /// `size` VMs, each started and configured now: a module that cannot
    /// start, or refuses its configuration, fails the config load.
    pub fn new(
        module: Module,
        shared: Arc<Shared>,
        budget: Budget,
        size: usize,
    ) -> Result<Pool, String> {
        let mut linker = linker()?.clone();
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(|e| format!("{e:#}"))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| format!("{e:#}"))?;
        let pool = Pool {
            pre,
            shared,
            budget,
            slots: (0..size.max(1))
                .map(|_| {
                    Mutex::new(Slot {
                        vm: None,
                        generation: 0,
                    })
                })
                .collect(),
            next: AtomicUsize::new(0),
        };
        for slot in pool.slots.iter() {
            let vm = pool.start().map_err(|f| f.message)?;
            slot.lock().unwrap_or_else(|e| e.into_inner()).vm = Some(vm);
        }
        Ok(pool)
    }

    /// The plugin's callout targets, if it has any.
    pub fn callouts(&self) -> Option<Arc<super::callout::Callouts>> {
        self.shared.callouts.clone()
    }

    pub fn exported(&self) -> Exported {
        let has = |name: &str| self.pre.module().get_export(name).is_some();
        Exported {
            request_body: has("proxy_on_request_body"),
            response_headers: has("proxy_on_response_headers"),
            response_body: has("proxy_on_response_body"),
            log: has("proxy_on_log"),
        }
    }

    /// A new VM: instantiated, `_initialize`d (WASI reactors), its root
    /// context created, started and configured.
    fn start(&self) -> Result<Vm, Failure> {
        let instantiate = |message: String| Failure {
            kind: "instantiate",
            message,
        };
        let host = Host {
            stream: StreamState::default(),
            shared: self.shared.clone(),
            limits: Limits {
                max_memory: self.budget.max_memory,
                denied: false,
            },
        };
        let mut store = Store::new(engine(), host);
        store.limiter(|host| &mut host.limits);
        let _ = store.set_fuel(self.budget.fuel);
        store.set_epoch_deadline(self.budget.ticks);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(&store, e, "instantiate"))?;
        let exports = Exports::of(&instance, &mut store).map_err(instantiate)?;
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            run(&mut store, self.budget, |s| init.call(s, ()))?;
        }
        let root = 1;
        run(&mut store, self.budget, |s| {
            exports.context_create.call(s, (root, 0))
        })?;
        let fuel = self.budget;
        if let Ok(vm_start) =
            instance.get_typed_func::<(i32, i32), i32>(&mut store, "proxy_on_vm_start")
            && run(&mut store, fuel, |s| vm_start.call(s, (root, 0)))? == 0
        {
            return Err(instantiate("proxy_on_vm_start answered false".into()));
        }
        if let Ok(configure) =
            instance.get_typed_func::<(i32, i32), i32>(&mut store, "proxy_on_configure")
        {
            let size = self.shared.configuration.len() as i32;
            if run(&mut store, fuel, |s| configure.call(s, (root, size)))? == 0 {
                return Err(instantiate(
                    "the filter refused its configuration (proxy_on_configure answered false)"
                        .into(),
                ));
            }
        }
        Ok(Vm {
            store,
            exports,
            root,
            next_context: root + 1,
        })
    }

    /// Runs `callback` for the stream of `ticket` (a new one the first
    /// time), with `stream` lent to the VM. Answers the filter's action.
    pub fn call(
        &self,
        ticket: &mut Option<Ticket>,
        stream: &mut StreamState,
        callback: Callback,
    ) -> Result<i32, Failure> {
        let index = match ticket {
            Some(t) => t.vm,
            None => self.pick(),
        };
        let mut slot = self.slots[index].lock().unwrap_or_else(|e| e.into_inner());
        if slot.vm.is_none() {
            slot.vm = Some(self.start()?);
        }
        let generation = slot.generation;
        let vm = slot.vm.as_mut().expect("started above");
        let result = (|| {
            let context = match ticket {
                Some(t) if t.generation == generation => t.context,
                _ => {
                    if matches!(callback, Callback::Done) {
                        return Ok(abi::ACTION_CONTINUE);
                    }
                    let context = vm.new_context();
                    let (create, root) = (vm.exports.context_create.clone(), vm.root);
                    run(&mut vm.store, self.budget, |s| {
                        create.call(s, (context, root))
                    })?;
                    *ticket = Some(Ticket {
                        vm: index,
                        generation,
                        context,
                    });
                    context
                }
            };
            std::mem::swap(&mut vm.store.data_mut().stream, stream);
            let result = vm.callback(context, callback, self.budget);
            std::mem::swap(&mut vm.store.data_mut().stream, stream);
            result
        })();
        if result.is_err() {
            // Its memory and contexts are in an unknown state: a new VM takes its place.
            slot.vm = None;
            slot.generation += 1;
        }
        result
    }

    /// A VM for a new stream: round robin, the first free one from there.
    fn pick(&self) -> usize {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| self.slots[i].try_lock().is_ok())
            .unwrap_or(start)
    }
}

impl Vm {
    fn new_context(&mut self) -> i32 {
        let context = self.next_context;
        self.next_context = match self.next_context.checked_add(1) {
            Some(next) => next,
            None => self.root + 1,
        };
        context
    }

    fn callback(&mut self, context: i32, callback: Callback, fuel: Budget) -> Result<i32, Failure> {
        let e = &self.exports;
        let store = &mut self.store;
        let stream_call = |f: &Option<TypedFunc<(i32, i32, i32), i32>>, n: usize, end: bool| {
            f.clone()
                .map(|f| move |s: &mut Store<Host>| f.call(s, (context, n as i32, end as i32)))
        };
        let action = match callback {
            Callback::RequestHeaders { count, end } => stream_call(&e.request_headers, count, end),
            Callback::RequestBody { size, end } => stream_call(&e.request_body, size, end),
            Callback::ResponseHeaders { count, end } => {
                stream_call(&e.response_headers, count, end)
            }
            Callback::ResponseBody { size, end } => stream_call(&e.response_body, size, end),
            Callback::HttpCallResponse {
                token,
                headers,
                body,
                trailers,
            } => {
                if let Some(respond) = e.http_call_response.clone() {
                    let args = (
                        context,
                        token as i32,
                        headers as i32,
                        body as i32,
                        trailers as i32,
                    );
                    run(store, fuel, |s| respond.call(s, args))?;
                }
                return Ok(abi::ACTION_CONTINUE);
            }
            Callback::Log => {
                if let Some(log) = e.log.clone() {
                    run(store, fuel, |s| log.call(s, context))?;
                }
                return Ok(abi::ACTION_CONTINUE);
            }
            Callback::Done => {
                let (done, delete) = (e.done.clone(), e.delete.clone());
                if let Some(done) = done {
                    run(store, fuel, |s| done.call(s, context))?;
                }
                if let Some(delete) = delete {
                    run(store, fuel, |s| delete.call(s, context))?;
                }
                return Ok(abi::ACTION_CONTINUE);
            }
        };
        match action {
            Some(call) => run(store, fuel, call),
            None => Ok(abi::ACTION_CONTINUE),
        }
    }
}

impl Exports {
    fn of(instance: &Instance, store: &mut Store<Host>) -> Result<Exports, String> {
        let context_create = instance
            .get_typed_func(&mut *store, "proxy_on_context_create")
            .map_err(|e| format!("proxy_on_context_create: {e:#}"))?;
        let mut optional = |name: &str| instance.get_typed_func(&mut *store, name).ok();
        Ok(Exports {
            context_create,
            request_headers: optional("proxy_on_request_headers"),
            request_body: optional("proxy_on_request_body"),
            response_headers: optional("proxy_on_response_headers"),
            response_body: optional("proxy_on_response_body"),
            http_call_response: instance
                .get_typed_func(&mut *store, "proxy_on_http_call_response")
                .ok(),
            log: instance.get_typed_func(&mut *store, "proxy_on_log").ok(),
            done: instance.get_typed_func(&mut *store, "proxy_on_done").ok(),
            delete: instance.get_typed_func(&mut *store, "proxy_on_delete").ok(),
        })
    }
}

/// Runs `f` with a full fuel budget; a failure says what went wrong.
fn run<T>(
    store: &mut Store<Host>,
    budget: Budget,
    f: impl FnOnce(&mut Store<Host>) -> wasmtime::Result<T>,
) -> Result<T, Failure> {
    let _ = store.set_fuel(budget.fuel);
    store.set_epoch_deadline(budget.ticks);
    store.data_mut().limits.denied = false;
    f(store).map_err(|e| classify(store, e, "trap"))
}

fn classify(store: &Store<Host>, error: wasmtime::Error, default: &'static str) -> Failure {
    let kind = match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => "fuel",
        Some(Trap::Interrupt) => "deadline",
        _ if store.data().limits.denied => "memory",
        _ => default,
    };
    let message = match kind {
        "fuel" => "the filter ran out of fuel (its `fuel` budget per callback)".to_owned(),
        "deadline" => "the filter ran past its `deadline` per callback".to_owned(),
        "memory" => format!(
            "the filter went past its memory cap ({} bytes): {error:#}",
            store.data().limits.max_memory
        ),
        _ => format!("{error:#}"),
    };
    Failure { kind, message }
}
