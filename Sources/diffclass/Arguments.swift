import Foundation
import NeuralNetworks

/// The flag that sets a library setting: `--` and its name with dashes (`n_timesteps` is
/// `--n-timesteps`), except for the settings whose flag is named otherwise.
func flagName(_ setting: Setting) -> String {
    switch setting {
    case .runFolder: return "--out"
    case .eotDraws: return "--eot"
    case .recordedRun: return "--run"
    default: return "--" + setting.name.replacingOccurrences(of: "_", with: "-")
    }
}

/// An error's message in the CLI's words: library settings named by their flags.
func cliMessage(_ error: Error) -> String {
    if let e = error as? SettingNamingError { return e.text.rendered(naming: flagName) }
    return "\(error)"
}

/// A command-line error: printed as "diffclass: <message>" with exit status 2.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Minimal `--flag value` / `--flag=value` / `--switch` parser. Every flag a command reads is
/// declared by reading it; `finish()` rejects flags nobody read, so typos fail loudly.
struct Arguments {
    private var options: [String: String] = [:]
    private var switches: Set<String> = []
    private var givenPositional: [String] = []
    /// The arguments that are not flags (files, run folders); `finish` refuses them unless the
    /// command takes them.
    var positional: [String] { givenPositional }
    private var used: Set<String> = []
    private var order: [String] = []
    private let valued: Set<String>
    private let switchNames: Set<String>?

    /// `valued` names the flags that take a value, `switches` those that take none; any other
    /// `--name` is refused at once, naming `command` (before any missing flag is reported).
    /// `switches` nil: any other `--name` is a switch (`finish` then catches the unread ones).
    init(_ args: [String], valued: Set<String>, switches: Set<String>? = nil, command: String = "") throws {
        self.valued = valued
        self.switchNames = switches
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == "--" { givenPositional += args[(i + 1)...]; break }
            if a.hasPrefix("--") {
                var name = String(a.dropFirst(2)), value: String?
                if let eq = name.firstIndex(of: "=") {
                    value = String(name[name.index(after: eq)...])
                    name = String(name[..<eq])
                }
                order.append(name)
                if let switches, !valued.contains(name), !switches.contains(name) {
                    throw UsageError("unknown option --\(name) for '\(command)' (see 'diffclass help \(command)')")
                }
                if valued.contains(name) {
                    if value == nil {
                        guard i + 1 < args.count else { throw UsageError("--\(name) needs a value") }
                        i += 1
                        value = args[i]
                    }
                    guard options[name] == nil else { throw UsageError("--\(name) given twice") }
                    // An empty value is an unset shell variable, never a choice (--out "" wrote into the working folder).
                    guard value?.isEmpty == false else { throw UsageError("--\(name) needs a value, got an empty one") }
                    options[name] = value
                } else {
                    guard value == nil else { throw UsageError("--\(name) takes no value") }
                    self.switches.insert(name)
                }
            } else {
                givenPositional.append(a)
            }
            i += 1
        }
    }

    /// A valued flag's value; `name` must be one of the command's valued flags.
    mutating func string(_ name: String) -> String? {
        precondition(valued.contains(name), "Arguments: --\(name) is read as a value but not declared in the command's valuedFlags")
        used.insert(name)
        return options[name]
    }

    /// Whether the valued flag `name` was given (read or not).
    func has(_ name: String) -> Bool {
        precondition(valued.contains(name), "Arguments: --\(name) is tested but not declared in the command's valuedFlags")
        return options[name] != nil
    }

    /// A switch; `name` must not be one of the command's valued flags.
    mutating func flag(_ name: String) -> Bool {
        precondition(!valued.contains(name), "Arguments: --\(name) is read as a switch but declared in the command's valuedFlags")
        precondition(switchNames?.contains(name) ?? true, "Arguments: --\(name) is read as a switch but not declared in the command's switches")
        used.insert(name)
        return switches.contains(name)
    }

    mutating func int(_ name: String, range: ClosedRange<Int> = Int.min...Int.max) throws -> Int? {
        guard let s = string(name) else { return nil }
        guard let v = Int(s), range.contains(v) else {
            let expected = range.upperBound == Int.max ? (range.lowerBound == 1 ? "a positive integer" : "an integer of at least \(range.lowerBound)")
                : range.lowerBound == Int.min ? "an integer" : "an integer in \(range.lowerBound)...\(range.upperBound)"
            throw UsageError("--\(name) expects \(expected), got '\(s)'")
        }
        return v
    }

    mutating func double(_ name: String, range: ClosedRange<Double> = -Double.infinity...Double.infinity) throws -> Double? {
        guard let s = string(name) else { return nil }
        guard let v = Double(s), range.contains(v) else {
            throw UsageError("--\(name) expects a number in \(range.lowerBound)...\(range.upperBound), got '\(s)'")
        }
        return v
    }

    /// Throws on any flag that was given but never read, and on arguments that are not flags
    /// unless `takesArguments` (a stray word used to be ignored silently).
    func finish(command: String, takesArguments: Bool = false) throws {
        for name in order where !used.contains(name) {
            throw UsageError("unknown option --\(name) for '\(command)' (see 'diffclass help \(command)')")
        }
        if !takesArguments, let stray = givenPositional.first {
            throw UsageError("unexpected argument '\(stray)' for '\(command)': it takes flags only (see 'diffclass help \(command)')")
        }
    }
}
