import Diffusion
import Foundation
import TensorEngine

/// The version `diffclass --version` prints.
let diffclassVersion = "0.9.0"


/// A `diffclass` command: its name, a one-line summary for `diffclass help`, its usage text
/// (`diffclass help NAME`, `diffclass NAME --help`), the flags that take a value (any other
/// `--flag` is a switch), and what it runs. Each command lives in its own file; a new command
/// conforms and is added to the list in `main.swift`.
protocol Command {
    var name: String { get }
    var summary: String { get }
    var usage: String { get }
    var valuedFlags: Set<String> { get }
    /// The flags that take no value (`--json`); any flag neither valued nor a switch is refused
    /// before the command runs.
    var switches: Set<String> { get }
    /// Reads its flags from `args` (then `args.finish`), runs, and returns the exit status.
    func run(_ args: inout Arguments) throws -> Int32
}

/// A command that reads its own words (`submit`: its options repeat, and the command it wraps
/// follows `--`); the tool hands them over unparsed, `--help` included.
protocol RawArgumentsCommand: Command {
    func run(raw: [String]) throws -> Int32
}

extension Command {
    var switches: Set<String> { [] }
}

extension RawArgumentsCommand {
    var valuedFlags: Set<String> { [] }
    func run(_ args: inout Arguments) throws -> Int32 { try run(raw: args.positional) }
}

/// The options every command takes.
enum GlobalOptions {
    static let valuedFlags: Set<String> = ["threads", "variant", "compute-dtype"]
    static let usage = """
    global options:
      --threads N   threads for kernels and BLAS (default: DIFFCLASS_THREADS or all cores)
      --variant V   read a diffusers folder's V weights (fp16: diffusion_pytorch_model.fp16.safetensors, model.fp16.safetensors)
      --compute-dtype fp32|bf16   the dtype of matrix products (default fp32; bf16 needs a CPU with AVX512_BF16;
                    recorded in settings.json, so a run resumes only with the dtype it started with)
      --version     the version of diffclass
    """
}

/// The tool: finds the command, answers `help`, parses the command's flags, sets the threads,
/// runs it, and prints errors (library settings named by their flags) with exit status 2.
struct CommandLineTool {
    let commands: [Command]

    /// `diffclass help`: every command with its summary.
    var overview: String {
        let width = (commands.map(\.name.count) + ["help".count]).max()! + 2
        func row(_ name: String, _ text: String) -> String { "  " + name.padding(toLength: width, withPad: " ", startingAt: 0) + text }
        let rows = commands.map { row($0.name, $0.summary) } + [row("help", "this list; 'diffclass help COMMAND' (or COMMAND --help): its usage")]
        return "usage: diffclass <command> [options]\n\ncommands:\n" + rows.joined(separator: "\n") + "\n\n" + GlobalOptions.usage
    }

    func command(named name: String) -> Command? { commands.first { $0.name == name } }

    /// A command's usage, then the global options.
    func usage(of c: Command) -> String { c.usage + "\n\n" + GlobalOptions.usage }

    func main(_ raw: [String]) -> Int32 {
        guard let name = raw.first else { print(overview); return 2 }
        if name == "--version" || name == "version" { print("diffclass \(diffclassVersion)"); return 0 }
        let rest = Array(raw.dropFirst())
        if ["help", "--help", "-h"].contains(name) {
            guard let topic = rest.first else { print(overview); return 0 }
            guard let c = command(named: topic) else { return fail("unknown command '\(topic)' (see 'diffclass help')") }
            print(usage(of: c))
            return 0
        }
        guard let c = command(named: name) else { return fail("unknown command '\(name)' (see 'diffclass help')") }
        if let c = c as? RawArgumentsCommand {
            do {
                Engine.initialize()
                return try c.run(raw: rest)
            } catch {
                return fail(cliMessage(error))
            }
        }
        let flags = rest.prefix { $0 != "--" }
        if flags.contains("--help") || flags.contains("-h") {
            print(usage(of: c))
            return 0
        }
        do {
            var args = try Arguments(rest, valued: c.valuedFlags.union(GlobalOptions.valuedFlags), switches: c.switches, command: c.name)
            if let threads = try args.int("threads", range: 1...4096) { Engine.threads = threads }
            let variant = args.string("variant")
            if let variant, variant.isEmpty || variant.contains("/") { throw UsageError("--variant: '\(variant)' is not a weights variant such as fp16") }
            if let name = args.string("compute-dtype") {
                guard let dtype = ComputeDType(name: name) else { throw UsageError("--compute-dtype: '\(name)' is not fp32 or bf16") }
                do { try Engine.setComputeDType(dtype) } catch { throw UsageError("--compute-dtype: \(error)") }
            }
            Engine.initialize()
            return try DiffusersFolder.$variant.withValue(variant) { try c.run(&args) }
        } catch {
            return fail(cliMessage(error))
        }
    }

    func fail(_ message: String) -> Int32 {
        FileHandle.standardError.write(Data("diffclass: \(message)\n".utf8))
        return 2
    }
}
