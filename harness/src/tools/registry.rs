//! The implementations a command line can name (`--dut`, `--vs`): `kernel`, `stack`,
//! `memory`, `smoltcp`, `vm:VERSION`, `exec:COMMAND`, and what each is once started.

use std::sync::Arc;

use tcptwin_stack::config::{Mutation, Profile};

#[cfg(feature = "smoltcp")]
use crate::dut::SmoltcpDut;
use crate::dut::{Dut, ExecDut, KernelDut, MemoryDut, StackDut};
use crate::vm::{VmError, VmKernelDut};

/// Why the implementations of a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("finding tcptwin's own binary (the VM's agent): {0}")]
    OwnBinary(std::io::Error),
    #[error("booting the vm:{version} DUT: {source}")]
    Vm {
        version: String,
        #[source]
        source: VmError,
    },
    #[error(transparent)]
    Adapter(crate::dut::exec::AdapterError),
}

/// An implementation `--dut` or `--vs` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DutChoice {
    /// The host's Linux kernel.
    Kernel,
    /// tcptwin-stack, attached to the veth through AF_PACKET.
    Stack,
    /// tcptwin-stack against the scripted peer in memory, in virtual time (no root).
    Memory,
    /// smoltcp (crates.io), on the veth through its raw-socket device.
    #[cfg(feature = "smoltcp")]
    Smoltcp,
    /// Linux of this version booted under qemu.
    Vm(String),
    /// A program speaking the DUT protocol (docs/dut-protocol.md), started by this shell
    /// command.
    Exec(String),
}

/// `--vs`: a second implementation, or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VsChoice {
    /// No second implementation: check the cases' expectations only.
    None,
    Dut(DutChoice),
}

pub fn parse_dut(s: &str) -> Result<DutChoice, String> {
    match s {
        "kernel" => Ok(DutChoice::Kernel),
        "stack" => Ok(DutChoice::Stack),
        "memory" => Ok(DutChoice::Memory),
        #[cfg(feature = "smoltcp")]
        "smoltcp" => Ok(DutChoice::Smoltcp),
        _ => match (s.strip_prefix("vm:"), s.strip_prefix("exec:")) {
            (Some(v), _) if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                Ok(DutChoice::Vm(v.to_string()))
            }
            (_, Some(command)) if !command.trim().is_empty() => {
                Ok(DutChoice::Exec(command.to_string()))
            }
            _ => Err(format!(
                "unknown implementation '{s}': expected kernel, stack, memory, smoltcp, vm:VERSION (e.g. vm:6.1) or exec:COMMAND (a DUT adapter, docs/dut-protocol.md)"
            )),
        },
    }
}

/// `bench --exec`: an `exec:COMMAND` DUT, as its command.
pub fn parse_exec(s: &str) -> Result<String, String> {
    match parse_dut(s)? {
        DutChoice::Exec(command) => Ok(command),
        _ => Err(format!("'{s}' is not an exec:COMMAND DUT")),
    }
}

pub fn parse_vs(s: &str) -> Result<VsChoice, String> {
    if s == "none" {
        Ok(VsChoice::None)
    } else {
        parse_dut(s).map(VsChoice::Dut)
    }
}

impl DutChoice {
    /// The name the command line gives it (`vm:6.1`, `exec:COMMAND`).
    pub fn label(&self) -> String {
        match self {
            DutChoice::Kernel => "kernel".to_string(),
            DutChoice::Stack => "stack".to_string(),
            DutChoice::Memory => "memory".to_string(),
            #[cfg(feature = "smoltcp")]
            DutChoice::Smoltcp => "smoltcp".to_string(),
            DutChoice::Vm(v) => format!("vm:{v}"),
            DutChoice::Exec(command) => format!("exec:{command}"),
        }
    }
}

pub fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse()
}

pub fn parse_mutation(s: &str) -> Result<Mutation, String> {
    Mutation::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Mutation::ALL.iter().map(|(n, _)| *n).collect();
        format!("unknown mutation '{s}'; known: {}", names.join(", "))
    })
}

/// The implementations of a run; a VM named twice is booted once and shared.
#[derive(Debug)]
pub struct Duts {
    vms: Vec<(String, Arc<VmKernelDut>)>,
    /// Each adapter named, by its command, once it answered `hello`.
    execs: Vec<(String, ExecDut)>,
    stack: StackDut,
}

impl Duts {
    /// Starts what `choices` need ahead of the cases: a VM booted once however often it is
    /// named, an adapter started once to learn its capabilities.
    pub fn new(choices: &[&DutChoice], stack: StackDut) -> Result<Duts, RegistryError> {
        let mut vms: Vec<(String, Arc<VmKernelDut>)> = Vec::new();
        let agent = std::env::current_exe().map_err(RegistryError::OwnBinary)?;
        if choices.iter().any(|c| matches!(c, DutChoice::Stack)) {
            // Measured now rather than by the first run (≤30 ms).
            crate::dut::stack::jiffies_offset();
        }
        for choice in choices {
            if let DutChoice::Vm(version) = choice {
                if !vms.iter().any(|(v, _)| v == version) {
                    eprintln!("booting Linux {version} under qemu ...");
                    let vm = VmKernelDut::boot(version, &agent).map_err(|e| RegistryError::Vm {
                        version: version.clone(),
                        source: e,
                    })?;
                    println!("{}", vm.describe());
                    vms.push((version.clone(), Arc::new(vm)));
                }
            }
        }
        let mut execs: Vec<(String, ExecDut)> = Vec::new();
        for choice in choices {
            if let DutChoice::Exec(command) = choice {
                if !execs.iter().any(|(c, _)| c == command) {
                    let exec = ExecDut::start(command).map_err(RegistryError::Adapter)?;
                    eprintln!("{}", exec.describe());
                    execs.push((command.clone(), exec));
                }
            }
        }
        Ok(Duts { vms, execs, stack })
    }

    /// The implementation `choice` names.
    pub fn get(&self, choice: &DutChoice) -> Box<dyn Dut> {
        match choice {
            DutChoice::Kernel => Box::new(KernelDut),
            DutChoice::Stack => Box::new(self.stack),
            DutChoice::Memory => Box::new(MemoryDut {
                profile: self.stack.profile,
                mutation: self.stack.mutation,
            }),
            #[cfg(feature = "smoltcp")]
            DutChoice::Smoltcp => Box::new(SmoltcpDut),
            DutChoice::Exec(command) => Box::new(
                self.execs
                    .iter()
                    .find(|(c, _)| c == command)
                    .map(|(_, exec)| exec.clone())
                    .expect("every adapter named was started"),
            ),
            DutChoice::Vm(version) => {
                let vm = self
                    .vms
                    .iter()
                    .find(|(v, _)| v == version)
                    .map(|(_, vm)| vm.clone())
                    .expect("every VM named was booted");
                Box::new(vm)
            }
        }
    }
}
