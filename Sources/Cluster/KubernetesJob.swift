import Foundation
import NeuralNetworks

/// What `submit k8s` puts in the manifests besides the shards.
public struct KubernetesOptions: Equatable, Sendable {
    /// The container image holding diffclass (required).
    public var image: String
    public var namespace: String?
    /// Pods at once (default: every shard).
    public var parallelism: Int?
    /// Per pod, Kubernetes quantities ("4", "500m"; "8Gi"): requests and limits alike.
    public var cpu: String?
    public var memory: String?
    /// PersistentVolumeClaims mounted in every pod: (claim, mount path). RUN must be on one that
    /// every pod can write (ReadWriteMany), or the merge cannot see the shards.
    public var volumes: [(claim: String, mountPath: String)] = []
    public var workingDirectory: String?
    /// Failed pods tolerated before the Job fails (each retry resumes its shard).
    public var backoffLimit: Int = 6
    public var serviceAccount: String?

    public init(image: String, namespace: String? = nil, parallelism: Int? = nil, cpu: String? = nil, memory: String? = nil,
                volumes: [(claim: String, mountPath: String)] = [], workingDirectory: String? = nil, backoffLimit: Int = 6,
                serviceAccount: String? = nil) {
        self.image = image
        self.namespace = namespace
        self.parallelism = parallelism
        self.cpu = cpu
        self.memory = memory
        self.volumes = volumes
        self.workingDirectory = workingDirectory
        self.backoffLimit = backoffLimit
        self.serviceAccount = serviceAccount
    }

    public static func == (a: KubernetesOptions, b: KubernetesOptions) -> Bool {
        a.image == b.image && a.namespace == b.namespace && a.parallelism == b.parallelism && a.cpu == b.cpu && a.memory == b.memory
            && a.volumes.map(\.claim) == b.volumes.map(\.claim) && a.volumes.map(\.mountPath) == b.volumes.map(\.mountPath)
            && a.workingDirectory == b.workingDirectory && a.backoffLimit == b.backoffLimit && a.serviceAccount == b.serviceAccount
    }

    /// Parses `--volume CLAIM:/mount/path`.
    public static func parseVolume(_ text: String) throws -> (claim: String, mountPath: String) {
        guard let colon = text.firstIndex(of: ":") else { throw ClusterError("\(Setting.volume): '\(text)' is not CLAIM:/mount/path") }
        let claim = String(text[..<colon]), path = String(text[text.index(after: colon)...])
        guard KubernetesOptions.isDNSName(claim, max: 253) else {
            throw ClusterError("\(Setting.volume): '\(claim)' is not a PersistentVolumeClaim name (lowercase letters, digits, '-', '.')")
        }
        guard path.hasPrefix("/") else { throw ClusterError("\(Setting.volume): the mount path '\(path)' must be absolute") }
        return (claim, path)
    }

    /// Checks every option, naming the flag.
    public func validate() throws {
        guard !image.isEmpty, !image.contains(where: { $0.isWhitespace }) else { throw ClusterError("\(Setting.image): '\(image)' is not a container image reference") }
        if let ns = namespace, !KubernetesOptions.isDNSName(ns, max: 63) || ns.contains(".") {
            throw ClusterError("\(Setting.namespace): '\(ns)' is not a namespace name (lowercase letters, digits, '-')")
        }
        if let p = parallelism, p < 1 { throw ClusterError("\(Setting.parallelism) expects a positive integer, got \(p)") }
        if let c = cpu, c.range(of: #"^([0-9]+(\.[0-9]+)?|[0-9]+m)$"#, options: .regularExpression) == nil {
            throw ClusterError("\(Setting.cpu): '\(c)' is not a Kubernetes CPU quantity (e.g. 4, 0.5, 500m)")
        }
        if let m = memory, m.range(of: #"^[0-9]+(\.[0-9]+)?([KMGTPE]i?|k)?$"#, options: .regularExpression) == nil {
            throw ClusterError("\(Setting.memory): '\(m)' is not a Kubernetes memory quantity (e.g. 8Gi, 512Mi)")
        }
        if let sa = serviceAccount, !KubernetesOptions.isDNSName(sa, max: 253) {
            throw ClusterError("\(Setting.serviceAccount): '\(sa)' is not a service account name")
        }
        if let wd = workingDirectory, !wd.hasPrefix("/") { throw ClusterError("\(Setting.workingDir): '\(wd)' must be an absolute path in the pods") }
        guard backoffLimit >= 0 else { throw ClusterError("\(Setting.backoffLimit) expects a non-negative integer") }
        if Set(volumes.map(\.claim)).count != volumes.count { throw ClusterError("\(Setting.volume): a claim is given twice") }
    }

    /// A DNS-1123 subdomain (or label, with no dots), as Kubernetes names objects.
    public static func isDNSName(_ s: String, max: Int) -> Bool {
        !s.isEmpty && s.count <= max && s.range(of: #"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"#, options: .regularExpression) != nil
    }
}

/// The Kubernetes manifests of a sharded run: an Indexed Job of N completions (pod I runs
/// `diffclass <command> ... --shard $(JOB_COMPLETION_INDEX)/N --threads $(DIFFCLASS_THREADS)
/// --out RUN/shards/$(JOB_COMPLETION_INDEX)`, its threads the pod's CPU limit), and a one-pod merge
/// Job running `MergeStep`. Kubernetes has no dependency between Jobs: apply the merge after the
/// shards' Job completes (`commands`).
///
/// Not tested against a Kubernetes cluster: the tests check the YAML text only. The fields used
/// (`completionMode: Indexed`, the completion-index annotation, `$(VAR)` expansion in `args`,
/// `resourceFieldRef`) are those of batch/v1 since Kubernetes 1.24.
public struct KubernetesJob: Sendable {
    public let plan: ShardPlan
    public let options: KubernetesOptions

    public init(plan: ShardPlan, options: KubernetesOptions) throws {
        try options.validate()
        guard KubernetesOptions.isDNSName(plan.jobName, max: 50), !plan.jobName.contains(".") else {
            throw ClusterError("\(Setting.jobName): '\(plan.jobName)' is not a Kubernetes Job name (lowercase letters, digits, '-', at most 50: the pods add -INDEX-XXXXX)")
        }
        try Quoting.checkPath(plan.run, what: "\(Setting.runFolder)", allowBackslash: true)
        self.plan = plan
        self.options = options
    }

    public var mergeJobName: String { plan.jobName + "-merge" }

    private func metadata(name: String, component: String) -> [String] {
        var lines = ["metadata:", "  name: \(name)"]
        if let ns = options.namespace { lines.append("  namespace: \(ns)") }
        lines += ["  labels:", "    app.kubernetes.io/name: diffclass", "    app.kubernetes.io/component: \(component)",
                  "    diffclass/run: \(plan.jobName)"]
        return lines
    }

    private func podLines(container: String, command: [String], args: [String], env: [String], cpu: String?) -> [String] {
        var lines = ["  template:", "    metadata:", "      labels:", "        app.kubernetes.io/name: diffclass",
                     "        diffclass/run: \(plan.jobName)", "    spec:", "      restartPolicy: Never"]
        if let sa = options.serviceAccount { lines.append("      serviceAccountName: \(sa)") }
        lines += ["      containers:", "        - name: \(container)", "          image: \(Quoting.yaml(options.image))"]
        if let wd = options.workingDirectory { lines.append("          workingDir: \(Quoting.yaml(wd))") }
        lines.append("          command: [" + command.map { Quoting.yaml($0) }.joined(separator: ", ") + "]")
        if !args.isEmpty {
            lines.append("          args:")
            lines += args.map { "            - " + Quoting.yaml($0) }
        }
        lines += env
        if cpu != nil || options.memory != nil {
            var quantities: [String] = []
            if let c = cpu { quantities.append("cpu: \(Quoting.yaml(c))") }
            if let m = options.memory { quantities.append("memory: \(Quoting.yaml(m))") }
            let q = "{" + quantities.joined(separator: ", ") + "}"
            lines += ["          resources:", "            requests: \(q)", "            limits: \(q)"]
        }
        if !options.volumes.isEmpty {
            lines.append("          volumeMounts:")
            for (i, v) in options.volumes.enumerated() {
                lines += ["            - name: volume-\(i)", "              mountPath: \(Quoting.yaml(v.mountPath))"]
            }
            lines.append("      volumes:")
            for (i, v) in options.volumes.enumerated() {
                lines += ["        - name: volume-\(i)", "          persistentVolumeClaim:", "            claimName: \(v.claim)"]
            }
        }
        return lines
    }

    /// `RUN/k8s/shards.yaml`: the Indexed Job.
    public var shardManifest: String {
        let n = plan.shards
        let fixed = ([plan.command.command] + plan.command.arguments).map(Quoting.kubernetesArgument)
        let runShards = Quoting.kubernetesArgument(plan.run.hasSuffix("/") ? plan.run + "shards/" : plan.run + "/shards/")
        let args = fixed + ["--shard", "$(JOB_COMPLETION_INDEX)/\(n)", "--threads", "$(DIFFCLASS_THREADS)",
                            "--out", runShards + "$(JOB_COMPLETION_INDEX)"]
        let env = [
            "          env:",
            "            - name: JOB_COMPLETION_INDEX",
            "              valueFrom:",
            "                fieldRef:",
            "                  fieldPath: \(Quoting.yaml("metadata.annotations['batch.kubernetes.io/job-completion-index']"))",
            "            - name: DIFFCLASS_THREADS",
            "              valueFrom:",
            "                resourceFieldRef:",
            "                  containerName: shard",
            "                  resource: limits.cpu",
            "                  divisor: \"1\"",
        ]
        var lines = [
            "# diffclass \(plan.command.command) over \(n) shards of \(plan.images) images as a Kubernetes Indexed Job (made by diffclass submit k8s).",
            "# Not tested against a Kubernetes cluster by diffclass's tests (they check this text only).",
            "# Pod I runs shard I/\(n) into \(plan.run)/shards/I and resumes there when retried; \(plan.run) must be on a volume every pod writes.",
            "apiVersion: batch/v1",
            "kind: Job",
        ]
        lines += metadata(name: plan.jobName, component: "shards")
        lines += ["spec:", "  completionMode: Indexed", "  completions: \(n)", "  parallelism: \(min(options.parallelism ?? n, n))",
                  "  backoffLimit: \(options.backoffLimit)"]
        lines += podLines(container: "shard", command: [plan.diffclass], args: args, env: env, cpu: options.cpu)
        return lines.joined(separator: "\n") + "\n"
    }

    /// `RUN/k8s/merge.yaml`: the merge Job (one pod, `sh -c` the merge step).
    public var mergeManifest: String {
        var lines = [
            "# The merge of the \(plan.shards) shards into \(plan.run) and its report.html (made by diffclass submit k8s).",
            "# Apply once the shards' Job \(plan.jobName) is complete. Not tested against a Kubernetes cluster by diffclass's tests.",
            "apiVersion: batch/v1",
            "kind: Job",
        ]
        lines += metadata(name: mergeJobName, component: "merge")
        lines += ["spec:", "  completions: 1", "  backoffLimit: 2"]
        let script = "set -eu\n" + MergeStep.script(plan: plan)
        lines += podLines(container: "merge", command: ["sh", "-c", script], args: [], env: [], cpu: options.cpu)
        return lines.joined(separator: "\n") + "\n"
    }

    /// The kubectl commands that run the two Jobs, one after the other.
    public static func commands(jobName: String, namespace: String?, shardManifest: String, mergeManifest: String) -> [String] {
        let ns = namespace.map { " -n \($0)" } ?? ""
        return [
            "kubectl apply -f \(Quoting.shell(shardManifest))",
            "kubectl wait\(ns) --for=condition=complete --timeout=-1s job/\(jobName) && kubectl apply -f \(Quoting.shell(mergeManifest))",
        ]
    }

    /// What to do when shards are incomplete: rerun the whole Indexed Job (complete shards resume
    /// with nothing to do), then the merge.
    public static func resubmitCommands(jobName: String, namespace: String?, shardManifest: String, mergeManifest: String) -> [String] {
        let ns = namespace.map { " -n \($0)" } ?? ""
        return ["kubectl delete\(ns) --ignore-not-found job/\(jobName) job/\(jobName)-merge"]
            + commands(jobName: jobName, namespace: namespace, shardManifest: shardManifest, mergeManifest: mergeManifest)
    }
}
