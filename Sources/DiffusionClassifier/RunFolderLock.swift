import Foundation
import NeuralNetworks

/// An advisory lock on a run folder, so that two processes never write one folder at once (two
/// shards given the same output, a run started twice): `flock` on `RUN/.lock`, which holds the
/// holder's process id for the refusal's message. The kernel drops the lock when the holder exits,
/// however it exits (a killed run leaves no stale lock; the file stays, naming the last holder).
///
/// Within one process the lock is shared: opening a folder this process already holds succeeds
/// (the lock is counted and released when the last holder is gone), so a library user may open a
/// run again to resume it. Filesystems without `flock` (some network mounts answer ENOLCK or
/// ENOTSUP) run unlocked, as before.
public final class RunFolderLock {
    public let directory: URL
    private let key: String

    private static let guardLock = NSLock()
    nonisolated(unsafe) private static var held: [String: (descriptor: Int32, count: Int)] = [:]

    /// The lock file's name inside the run folder.
    public static let fileName = ".lock"

    private init(directory: URL, key: String) {
        self.directory = directory
        self.key = key
    }

    /// Locks `directory` (an existing folder) for this process, or throws naming the folder and the
    /// process that holds it.
    public static func acquire(_ directory: URL) throws -> RunFolderLock {
        let key = directory.standardizedFileURL.resolvingSymlinksInPath().path
        guardLock.lock()
        defer { guardLock.unlock() }
        if let h = held[key] {
            held[key] = (h.descriptor, h.count + 1)
            return RunFolderLock(directory: directory, key: key)
        }
        let path = directory.appendingPathComponent(fileName).path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ClassifierError("\(directory.path): cannot create the lock file \(fileName) (\(String(cString: strerror(errno)))); use another \(Setting.runFolder)")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EWOULDBLOCK {
                let holder = Self.recordedHolder(fd)
                close(fd)
                throw ClassifierError("\(directory.path): another process\(holder.map { " (pid \($0))" } ?? "") is writing this run folder; "
                    + "wait for it to finish, or use another \(Setting.runFolder)")
            }
            guard code == ENOLCK || code == ENOTSUP || code == EOPNOTSUPP else {
                close(fd)
                throw ClassifierError("\(directory.path): cannot lock the run folder (\(String(cString: strerror(code))))")
            }
        }
        let text = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 { _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
        held[key] = (fd, 1)
        return RunFolderLock(directory: directory, key: key)
    }

    /// Deletes the lock file while still holding the lock, when this process holds it once (a
    /// merge's new folder then holds only its run files, as scripts that move them out expect).
    public func removeFile() {
        Self.guardLock.lock()
        defer { Self.guardLock.unlock() }
        guard let h = Self.held[key], h.count == 1 else { return }
        unlink(directory.appendingPathComponent(Self.fileName).path)
    }

    /// The pid written in the lock file by its holder, if readable.
    private static func recordedHolder(_ fd: Int32) -> Int? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    deinit {
        Self.guardLock.lock()
        defer { Self.guardLock.unlock() }
        guard let h = Self.held[key] else { return }
        if h.count > 1 {
            Self.held[key] = (h.descriptor, h.count - 1)
        } else {
            Self.held[key] = nil
            close(h.descriptor)  // releases the flock
        }
    }
}
