import Foundation
import LLVMKit
import MLXCCodegen
import MLXCIR

extension JITProgram {
    /// Chooses a step for every node: a kernel where a lowering applies, a native view or scalar
    /// op, or the reference fallback. Then compiles all kernels in one module.
    /// How the QD8 linear sums its codes on the planned target. Run here instead (`runPlanOnHost`),
    /// ARM64's `sdot` takes its portable twin (the same exact sums by widening multiplies).
    var planWordDot: DynamicQuantLinearKernels.WordDot {
        let dot = DynamicQuantLinearKernels.WordDot.forTarget(triple: planTarget.triple, features: planTarget.features)
        return dot == .neonDot && !planTarget.isHost && options.runPlanOnHost ? .neon : dot
    }

    func buildPlans() throws {
        let library = KernelLibrary()
        var pending: [(block: Int, index: Int, lowered: LoweredKernel)] = []
        var useCounts: [ValueID: Int] = [:]
        for block in graph.blocks { for node in block.nodes { for v in node.op.operands { useCounts[v, default: 0] += 1 } } }
        for v in graph.outputs { useCounts[v, default: 0] += 1 }
        var context = LoweringContext(graph: graph, baseValues: baseValues, useCounts: useCounts,
                                      lanes: planTarget.vectorBits / 32,
                                      wordDot: planWordDot)
        context.dynamicQuantPacks = dynamicQuantPacks
        context.halfWeights = options.exactHalfWeights ? halfWeights : nil
        context.types = ShapeInference.infer(graph).types
        var folded = Set<ValueID>()   // results of nodes whose work another kernel absorbed

        for (b, block) in graph.blocks.enumerated() where b != graph.initBlock {
            var steps: [Step] = []
            for node in block.nodes {
                if Self.isNativeScalar(node.op) { steps.append(.scalar(node)); continue }
                if Self.isView(node.op) { steps.append(.view(node)); continue }
                if case .if(let op) = node.op { steps.append(.branch(op, origin: node.origin)); continue }
                if case .noop = node.op { steps.append(.skip(node)); continue }
                // A consumer whose work an earlier kernel absorbed (a per-tensor scale folded into a quantized matmul).
                if !node.op.results.isEmpty, node.op.results.allSatisfy(folded.contains) { steps.append(.skip(node)); continue }
                if let lowered = Lowerings.lower(node, context) {
                    library.require(lowered.definition)
                    folded.formUnion(lowered.absorbs)
                    pending.append((b, steps.count, lowered))
                    steps.append(.skip(node))   // replaced by the kernel once compiled
                    continue
                }
                steps.append(.fallback(node, reason: Lowerings.reason(node, context)))
            }
            plans[b] = steps
        }
        // Nodes whose only consumer absorbed them (e.g. a weight transpose folded into a linear kernel).
        for (b, steps) in plans {
            plans[b] = steps.map { step in
                if case .fallback(let node, _) = step, !node.op.results.isEmpty, node.op.results.allSatisfy(folded.contains) {
                    return .skip(node)
                }
                return step
            }
        }
        let start = Date()
        let functions: [String: KernelFunction]
        if plannedOnly {
            functions = [:]   // planned for another machine: nothing runs here (see `Options.target`)
        } else if let object = options.precompiledObject {
            if !library.definitions.isEmpty { try jit.addObject(object, name: "mlxc_artifact_kernels") }
            functions = try library.lookup(in: jit)
        } else if options.keepDumps {
            let (compiled, dumps) = try library.compile(into: jit, machine: machine, keepDumps: true)
            functions = compiled
            self.dumps = dumps
        } else {
            (functions, compileReport) = try library.compile(into: jit, machine: machine, cache: options.kernelCache,
                                                            threads: AvailableCores.count, progress: options.compileProgress)
        }
        compileSeconds = Date().timeIntervalSince(start)
        self.library = library
        kernelNames = library.definitions.map(\.name)
        var unfold = Set<ValueID>()
        for (b, index, lowered) in pending {
            guard let function = functions[lowered.definition.name] else {
                if plannedOnly { crossKernels[b, default: [:]][index] = lowered.definition.name; continue }
                guard case .skip(let node) = plans[b]![index] else { continue }
                let why = library.rejected[lowered.definition.name] ?? "it was not compiled"
                plans[b]![index] = .fallback(node, reason: "kernel \(lowered.definition.name) dropped: \(why)")
                unfold.formUnion(lowered.absorbs)
                continue
            }
            plans[b]![index] = .kernel(lowered.launch(function))
        }
        // A dropped kernel no longer absorbs its folded producers: they run again.
        if !unfold.isEmpty {
            for (b, steps) in plans {
                plans[b] = steps.map { step in
                    if case .skip(let node) = step, !node.op.results.isEmpty, node.op.results.allSatisfy(unfold.contains) {
                        return .fallback(node, reason: "its consumer's kernel was dropped")
                    }
                    return step
                }
            }
        }
        for b in plans.keys.sorted() {
            for (i, step) in plans[b]!.enumerated() {
                switch step {
                case .kernel(let l): planSummary.append("block \(b): kernel \(l.name)")
                case .skip where crossKernels[b]?[i] != nil: planSummary.append("block \(b): kernel \(crossKernels[b]![i]!)")
                case .scalar(let n): planSummary.append("block \(b): scalar \(n.op.name)")
                case .view(let n): planSummary.append("block \(b): view \(n.op.name)")
                case .fallback(let n, _): planSummary.append("block \(b): reference \(n.op.name)")
                case .branch: planSummary.append("block \(b): if")
                case .skip(let n): planSummary.append("block \(b): folded \(n.op.name)")
                }
            }
        }
        for steps in plans.values {
            for case .fallback(let node, let reason) in steps {
                remarks.append("\(node.origin ?? "?"): \(node.op.name) runs on the reference executor: \(reason)")
            }
        }
    }
}

/// What lowerings may look at when deciding how to compile a node.
struct LoweringContext {
    let graph: Graph
    let baseValues: [NativeTensor?]
    let useCounts: [ValueID: Int]
    /// f32 lanes of the widest vector register.
    let lanes: Int
    /// How the target multiplies i16 pairs (the integer-exact dynamically quantized linears).
    var wordDot: DynamicQuantLinearKernels.WordDot = .generic
    /// 4-bit dynamic-quant linears whose weights were repacked for the int8 GEMM kernel (by the op's result).
    var dynamicQuantPacks: [ValueID: PackedDynamicQuant] = [:]

    /// The defining node of a value in the main block, if any.
    func producer(_ v: ValueID) -> Op? {
        for block in graph.blocks { for node in block.nodes where node.op.results.contains(v) { return node.op } }
        return nil
    }

    /// A value known at compile time (constant or init result) with its native tensor.
    func constant(_ v: ValueID) -> NativeTensor? {
        switch graph[v].kind {
        case .constant: return baseValues[v.index]
        case .computed: return baseValues[v.index]   // computed once by the init block
        default: return nil
        }
    }

    /// Every value's type as shape inference sees it (what a run produces; nil where unknown).
    var types: [TensorType?] = []
    /// f16 copies of f32 weights that hold only f16 values (for one-token linears); nil: none made.
    var halfWeights: ExactHalfWeights? = nil

    /// The f16 copies of f32 weights `ws` (every value of each an f16), for kernels that read them on
    /// one-token calls: all of them, or nil.
    func halfCopies(of ws: [ValueID]) -> [NativeTensor]? {
        guard let halfWeights else { return nil }
        var copies: [NativeTensor] = []
        for w in ws {
            guard let t = constant(w), t.dtype == .f32, t.shape.count == 2, let h = halfWeights.copy(w, t) else { return nil }
            copies.append(h)
        }
        return copies
    }

    /// The inferred type of a value, else its declared one.
    func type(_ v: ValueID) -> TensorType? { (v.index < types.count ? types[v.index] : nil) ?? graph[v].type }

    func dtype(_ v: ValueID) -> DType? { type(v)?.dtype }
}

/// A node turned into a kernel: the definition to compile and how to launch it.
struct LoweredKernel {
    let definition: KernelDefinition
    /// Values whose producing nodes become unnecessary (their only use was folded in).
    var absorbs: Set<ValueID> = []
    let launch: (KernelFunction) -> KernelLaunch
}
