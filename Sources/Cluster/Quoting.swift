import Foundation
import NeuralNetworks

/// A cluster-submission error: bad options (naming the flag), an unusable run folder, a scheduler
/// command that failed. The CLI prints it and exits 2.
public struct ClusterError: SettingNamingError {
    public let text: ErrorText
    public init(_ text: ErrorText) { self.text = text }
}

/// The submission options named in errors (see `Setting`).
extension Setting {
    public static let shards = Setting("shards")
    public static let jobName = Setting("job_name")
    /// The diffclass binary the nodes run.
    public static let diffclassPath = Setting("diffclass")
    public static let partition = Setting("partition")
    public static let time = Setting("time")
    public static let mergeTime = Setting("merge_time")
    public static let cpusPerTask = Setting("cpus_per_task")
    public static let mem = Setting("mem")
    public static let sbatchLine = Setting("sbatch_line")
    public static let image = Setting("image")
    public static let namespace = Setting("namespace")
    public static let parallelism = Setting("parallelism")
    public static let cpu = Setting("cpu")
    public static let memory = Setting("memory")
    public static let volume = Setting("volume")
    public static let workingDir = Setting("working_dir")
    public static let backoffLimit = Setting("backoff_limit")
    public static let serviceAccount = Setting("service_account")
}

/// Quoting for the texts generated scripts and manifests hold. Every path and argument of the
/// user's goes through one of these, so spaces, quotes, `$`, `#` and `%` arrive unchanged.
public enum Quoting {
    /// A POSIX shell word: unchanged when it holds only safe characters, else in single quotes
    /// (a single quote inside written as `'\''`). Safe in `sh` and `bash` for any text without NUL.
    public static func shell(_ text: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=/.,:@%")
        if !text.isEmpty, text.allSatisfy({ safe.contains($0) }), text.first != "=" { return text }
        return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// A command line of shell words.
    public static func shell(_ words: [String]) -> String { words.map { shell($0) }.joined(separator: " ") }

    /// A value on an `#SBATCH` line: sbatch splits those lines at blanks, honours double and single
    /// quotes and backslash escapes, and ends the line at an unquoted `#`; so the value goes in
    /// double quotes with `\` and `"` escaped.
    public static func sbatchValue(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// A literal path inside a Slurm file-name pattern (`--output`): `%` doubled. Slurm turns off
    /// pattern replacement for a name holding a backslash, so such paths are refused earlier
    /// (`checkPath`).
    public static func slurmFilenameLiteral(_ path: String) -> String {
        path.replacingOccurrences(of: "%", with: "%%")
    }

    /// A YAML double-quoted scalar (JSON string syntax is valid YAML).
    public static func yaml(_ text: String) -> String {
        var out = "\""
        for u in text.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || u.value == 0x7F { out += String(format: "\\u%04X", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// A Kubernetes `command`/`args` element: Kubernetes expands `$(NAME)` of the container's
    /// environment there, so a literal `$(` is written `$$(`.
    public static func kubernetesArgument(_ text: String) -> String {
        text.replacingOccurrences(of: "$(", with: "$$(")
    }

    /// Refuses a path no generated script can carry: one with a newline or other control
    /// character, or (for Slurm's `--output` patterns) a backslash. `what` names the flag.
    public static func checkPath(_ path: String, what: ErrorText, allowBackslash: Bool = false) throws {
        if path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw ClusterError("\(what): '\(path.debugDescription)' holds a newline or control character; use another path")
        }
        if !allowBackslash, path.contains("\\") {
            throw ClusterError("\(what): '\(path)' holds a backslash, which turns off Slurm's %A/%a log-name patterns; use another path")
        }
    }

    /// A name of letters, digits, `_`, `.`, `-` from `text` (others become `-`), for job names.
    public static func jobName(_ text: String) -> String {
        let ok = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
        let mapped = String(text.map { ok.contains($0) ? $0 : "-" })
        return mapped.isEmpty ? "run" : mapped
    }
}
