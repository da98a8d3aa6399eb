import Foundation
import XCTest
import MLXCFrontend
import MLXCIR
@testable import MLXCRuntime

/// `ShapeRules` against the reference executor, the oracle: every fixture is run step by step with
/// an observer on every value the executor computes, and for every node that ran,
/// - concrete mode (operand types from the observed tensors, scalars from observed one-element
///   values) gives exactly the observed dtype and shape of each result;
/// - `ShapeInference.annotate` (symbolic mode, run once on the imported graph) gave the value a type
///   of the observed dtype and rank whose fixed dims equal the observed ones and whose dynamic dims
///   bound them. Where the importer declared a type that the run contradicts, annotate keeps it but
///   must have warned about it; those are listed in the report.
/// Then single ops across dtypes and shapes the fixtures do not reach, the rules and the reference
/// agreeing on the result type or on failing.
final class ShapeRulesMatchReferenceTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func type(_ t: HostTensor) -> TensorType { TensorType(t.dtype, fixed: t.shape) }

    /// True if a value of type `t` can be `x`.
    static func bounds(_ t: TensorType, _ x: HostTensor) -> Bool {
        t.dtype == x.dtype && t.rank == x.rank && zip(t.shape, x.shape).allSatisfy { d, n in
            switch d {
            case .fixed(let k): return k == n
            case .dynamic(let lo, let hi): return n >= lo && (hi.map { n <= $0 } ?? true)
            }
        }
    }

    struct Report {
        var fixture = ""
        var steps = 0
        var nodes = 0
        var values = 0
        var ops = Set<String>()
        var warnings = 0
        /// Values whose declared (importer) type the run contradicts, each with the warning annotate gave.
        var importerDisagreements: [String] = []
        /// Values annotate left without a type, each with the warning it gave.
        var untyped: [String] = []
        var failures: [String] = []
    }

    /// Checks one block run against the executor's observations, in execution order.
    struct Replay {
        let graph: Graph
        let executor: ReferenceExecutor
        var log: [(ValueID, HostTensor)]
        var cursor = 0
        /// The latest value of every id, as the run left it so far.
        var current: [ValueID: HostTensor]
        var report: Report

        func tensor(_ v: ValueID) -> HostTensor? {
            if let t = current[v] { return t }
            if case .constant = graph[v].kind { return try? executor.constant(v) }
            return nil
        }

        func int(_ x: IntOrValue) -> Int? {
            switch x {
            case .literal(let n): return Int(n)
            case .value(let v): return tensor(v).flatMap { $0.count == 1 ? Int(Int64(clampingToInt: $0.storage[0])) : nil }
            }
        }

        mutating func run(block b: Int) {
            let block = graph.blocks[b]
            for (n, node) in block.nodes.enumerated() {
                let op = node.op
                let place = "\(report.fixture) step \(report.steps) \(block.name) node \(n) \(op.name)"
                if case .if(let o) = op {
                    guard let c = int(o.cond) else { report.failures.append("\(place): condition unknown"); return }
                    run(block: c != 0 ? o.thenChainIdx : o.elseChainIdx)
                    continue
                }
                let results = op.results
                guard !results.isEmpty else { continue }
                // A copy of a value no path computed leaves its result undefined (the reference skips it).
                if case .idCopy(let c) = op, tensor(c.x) == nil, cursor >= log.count || log[cursor].0 != c.out { continue }
                guard cursor + results.count <= log.count, zip(results, log[cursor...]).allSatisfy({ $0 == $1.0 }) else {
                    report.failures.append("\(place): the observations do not line up with the program (at \(cursor) of \(log.count))")
                    return
                }
                let observed = log[cursor..<(cursor + results.count)].map(\.1)
                let operands = Set(op.operands)
                let resultSet = Set(results)
                do {
                    let predicted = try ShapeRules.resultTypes(
                        of: op,
                        type: { v in
                            // A result asks for its declared type (arange, argmax… take their dtype from it).
                            if resultSet.contains(v) && !operands.contains(v) { return graph[v].type }
                            return tensor(v).map(ShapeRulesMatchReferenceTests.type)
                        },
                        scalar: { v in tensor(v).flatMap { $0.count == 1 ? Int(Int64(clampingToInt: $0.storage[0])) : nil } })
                    for (i, (p, x)) in zip(predicted, observed).enumerated() where p != ShapeRulesMatchReferenceTests.type(x) {
                        let operandTypes = op.operands.map { v in tensor(v).map { "\(v): \(ShapeRulesMatchReferenceTests.type($0))" } ?? "\(v): ?" }
                        report.failures.append("\(place) result \(i) \(results[i]): rules say \(p?.description ?? "unknown"), "
                                               + "the reference computed \(ShapeRulesMatchReferenceTests.type(x)) (operands \(operandTypes.joined(separator: ", ")))")
                    }
                } catch {
                    report.failures.append("\(place): rules throw \(error), the reference ran")
                }
                for (r, x) in zip(results, observed) { current[r] = x }
                cursor += results.count
                report.nodes += 1
                report.ops.insert(op.name)
            }
        }
    }

    func fixtures() throws -> [String] {
        let fm = FileManager.default
        return try fm.contentsOfDirectory(atPath: Self.root.path).sorted().filter {
            !$0.contains("xnnpack")  // delegate_call: the reference cannot run the XNNPACK payload
                && fm.fileExists(atPath: Self.root.appendingPathComponent("\($0)/model.pte").path)
                && fm.fileExists(atPath: Self.root.appendingPathComponent("\($0)/step0.input0.npy").path)
        }
    }

    func check(fixture name: String) throws -> Report {
        let dir = Self.root.appendingPathComponent(name)
        let ptd = dir.appendingPathComponent("model.ptd").path
        let pte = try PTEFile(path: dir.appendingPathComponent("model.pte").path,
                              externalData: FileManager.default.fileExists(atPath: ptd) ? [ptd] : [])
        let graph = try Importer.importMethod(pte).graph
        var annotated = graph
        let warnings = ShapeInference.annotate(&annotated)
        let inference = ShapeInference.infer(graph)
        var report = Report(fixture: name, warnings: warnings.count)

        let executor = try ReferenceExecutor(graph: graph, pte: pte)
        var log: [(ValueID, HostTensor)] = []
        executor.onValue = { log.append(($0, $1)) }
        var seen: [ValueID: [HostTensor]] = [:]

        func replay(block: Int, start: [ValueID: HostTensor]) {
            var r = Replay(graph: graph, executor: executor, log: log, current: start, report: report)
            r.run(block: block)
            if r.cursor != log.count { r.report.failures.append("\(name) step \(report.steps): \(log.count - r.cursor) observations left over") }
            report = r.report
            for (v, t) in log { seen[v, default: []].append(t) }
        }

        // The init block ran when the executor was made; run it again, observed, from the load-time state.
        if let initBlock = graph.initBlock {
            try executor.resetState()
            let start = executor.state
            var env = Environment(executor: executor)
            try env.run(block: initBlock)
            executor.initValues = env.values
            replay(block: initBlock, start: start)
        }

        let meta = (try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json"))) as? [String: Any]) ?? [:]
        let steps = (meta["steps"] as? Int) ?? 1
        for k in 0..<steps {
            var inputs: [HostTensor] = []
            for i in 0... {
                let path = dir.appendingPathComponent("step\(k).input\(i).npy").path
                guard FileManager.default.fileExists(atPath: path) else { break }
                var t = try TensorFiles.readNPY(path)
                if let want = graph[graph.inputs[i]].type?.dtype, want != t.dtype, want.isFloatingPoint { t = t.converted(to: want) }
                inputs.append(t)
            }
            var start = executor.state.merging(executor.initValues) { s, _ in s }
            for (id, t) in zip(graph.inputs, inputs) { start[id] = t }
            log = []
            report.steps = k
            _ = try executor.run(inputs)
            replay(block: 0, start: start)
        }
        report.steps = steps

        // Symbolic mode: every observed value within its annotated type.
        for (v, tensors) in seen.sorted(by: { $0.key < $1.key }) {
            report.values += 1
            let stored = annotated[v].type
            let flowed = inference.types[v.index]
            for x in tensors {
                let observed = Self.type(x)
                if let flowed, !Self.bounds(flowed, x) {
                    report.failures.append("\(name) \(v): inference gives \(flowed), a run computed \(observed)")
                }
                guard let stored else {
                    // Only a value whose type annotate could not settle, and said so, may stay untyped
                    // (an `if` whose branches write it with different ranks).
                    if let w = warnings.first(where: { $0.hasPrefix("\(v) ") }) {
                        report.untyped.append("\(v) computed \(observed) (warned: \(w))")
                    } else {
                        report.failures.append("\(name) \(v): no type after annotate, a run computed \(observed)")
                    }
                    break
                }
                if !Self.bounds(stored, x) {
                    if let w = warnings.first(where: { $0.hasPrefix("\(v) ") }) {
                        report.importerDisagreements.append("\(v) declared \(stored), computed \(observed) (warned: \(w))")
                    } else {
                        report.failures.append("\(name) \(v): annotated \(stored) without a warning, a run computed \(observed)")
                    }
                    break
                }
            }
        }
        return report
    }

    func testRulesMatchTheReferenceOnEveryFixture() throws {
        let names = try fixtures()
        XCTAssertGreaterThanOrEqual(names.count, 20)
        var lines: [String] = []
        var ops = Set<String>()
        var nodes = 0, values = 0, disagreements = 0, untyped = 0
        for name in names {
            do {
                let r = try check(fixture: name)
                for f in r.failures.prefix(20) { XCTFail(f) }
                if r.failures.count > 20 { XCTFail("\(name): \(r.failures.count - 20) more failures") }
                XCTAssertGreaterThan(r.nodes, 0, name)
                ops.formUnion(r.ops)
                nodes += r.nodes
                values += r.values
                disagreements += r.importerDisagreements.count
                lines.append("\(name): \(r.steps) steps, \(r.nodes) nodes run, \(r.values) values, \(r.warnings) annotate warnings, "
                             + "\(r.importerDisagreements.count) declared types contradicted by the run, \(r.untyped.count) values left untyped")
                for d in r.importerDisagreements.prefix(3) + r.untyped.prefix(2) { lines.append("    \(d)") }
                untyped += r.untyped.count
            } catch {
                XCTFail("\(name): \(error)")
            }
        }
        lines.append("total: \(nodes) nodes, \(values) values, \(ops.count) distinct ops: \(ops.sorted().joined(separator: " "))")
        lines.append("declared types contradicted by the run: \(disagreements); values left untyped (with a warning): \(untyped)")
        print(lines.joined(separator: "\n"))
    }

    // MARK: - Single ops

    /// Runs one op on `inputs` with the reference and with the rules: both must fail, or agree on the type.
    @discardableResult
    func agree(_ inputs: [HostTensor], outType: TensorType? = nil, results: Int = 1, _ label: String,
               file: StaticString = #filePath, line: UInt = #line, _ make: ([ValueID], [ValueID]) -> Op) -> Bool {
        var g = RefGraph()
        let ids = inputs.map { g.input($0) }
        let outs = (0..<results).map { _ in g.result(outType) }
        let op = make(ids, outs)
        g.append(op)
        let reference: Result<[HostTensor], Error> = Result { try g.run(outs) }
        let rules: Result<[TensorType?], Error> = Result {
            try ShapeRules.resultTypes(of: op, type: { v in
                if let i = ids.firstIndex(of: v) { return Self.type(inputs[i]) }
                return g.graph[v].type
            }, scalar: { _ in nil })
        }
        switch (reference, rules) {
        case (.success(let xs), .success(let ts)):
            let observed = xs.map(Self.type)
            XCTAssertEqual(ts, observed, "\(label): rules vs reference", file: file, line: line)
            return ts == observed
        case (.failure, .failure):
            return true
        case (.success(let xs), .failure(let e)):
            XCTFail("\(label): rules throw \(e), the reference gives \(xs.map(Self.type))", file: file, line: line)
        case (.failure(let e), .success(let ts)):
            XCTFail("\(label): the reference throws \(e), the rules give \(ts)", file: file, line: line)
        }
        return false
    }

    static func tensor(_ dtype: DType, _ shape: [Int], _ value: Double = 1) -> HostTensor {
        HostTensor(dtype: dtype, shape: shape, repeating: value)
    }

    /// Binary and unary elementwise ops over every pair of common dtypes, at rank 0 and 1 each:
    /// the result dtypes (promotion, at-least-float, bool results) and which combinations fail.
    func testElementwiseDTypesMatchTheReference() throws {
        let dtypes: [DType] = [.bool, .u8, .i8, .i16, .i32, .i64, .u32, .f16, .bf16, .f32, .f64]
        let binaries: [(String, (ValueID, ValueID, ValueID) -> Op)] = [
            ("add", { .add(AddOp(a: $0, b: $1, out: $2)) }), ("subtract", { .subtract(SubtractOp(a: $0, b: $1, out: $2)) }),
            ("multiply", { .multiply(MultiplyOp(a: $0, b: $1, out: $2)) }), ("divide", { .divide(DivideOp(a: $0, b: $1, out: $2)) }),
            ("maximum", { .maximum(MaximumOp(a: $0, b: $1, out: $2)) }), ("power", { .power(PowerOp(a: $0, b: $1, out: $2)) }),
            ("floor_divide", { .floorDivide(FloorDivideOp(a: $0, b: $1, out: $2)) }),
            ("remainder", { .remainder(RemainderOp(a: $0, b: $1, out: $2)) }), ("atan2", { .atan2(Atan2Op(a: $0, b: $1, out: $2)) }),
            ("less", { .less(LessOp(a: $0, b: $1, out: $2)) }), ("equal", { .equal(EqualOp(a: $0, b: $1, out: $2)) }),
            ("logical_and", { .logicalAnd(LogicalAndOp(a: $0, b: $1, out: $2)) }),
            ("bitwise_xor", { .bitwiseXor(BitwiseXorOp(a: $0, b: $1, out: $2)) }),
        ]
        var cases = 0
        for x in dtypes {
            for y in dtypes {
                for (rx, ry) in [([3], [3]), ([], [3]), ([3], []), ([], [])] {
                    for (name, make) in binaries {
                        agree([Self.tensor(x, rx), Self.tensor(y, ry)], "\(name) \(x.name)\(rx) \(y.name)\(ry)") { ids, outs in
                            make(ids[0], ids[1], outs[0])
                        }
                        cases += 1
                    }
                    agree([Self.tensor(.bool, [1]), Self.tensor(x, rx), Self.tensor(y, ry)], "where \(x.name)\(rx) \(y.name)\(ry)") {
                        .where(WhereOp(condition: $0[0], x: $0[1], y: $0[2], out: $1[0]))
                    }
                    agree([Self.tensor(x, rx), Self.tensor(y, ry)], "clip \(x.name)\(rx) \(y.name)\(ry)") {
                        .clip(ClipOp(x: $0[0], out: $1[0], aMin: $0[1]))
                    }
                    agree([Self.tensor(x, rx), Self.tensor(y, ry)], "concatenate \(x.name)\(rx) \(y.name)\(ry)") {
                        .concatenate(ConcatenateOp(tensors: $0, out: $1[0], axis: 0))
                    }
                }
            }
            let unaries: [(String, (ValueID, ValueID) -> Op)] = [
                ("exp", { .exp(ExpOp(x: $0, out: $1)) }), ("rsqrt", { .rsqrt(RsqrtOp(x: $0, out: $1)) }),
                ("gelu", { .gelu(GeluOp(x: $0, out: $1, approximate: "none")) }), ("floor", { .floor(FloorOp(x: $0, out: $1)) }),
                ("square", { .square(SquareOp(x: $0, out: $1)) }), ("neg", { .neg(NegOp(x: $0, out: $1)) }),
                ("abs", { .abs(AbsOp(x: $0, out: $1)) }), ("logical_not", { .logicalNot(LogicalNotOp(x: $0, out: $1)) }),
                ("bitwise_invert", { .bitwiseInvert(BitwiseInvertOp(x: $0, out: $1)) }), ("sigmoid", { .sigmoid(SigmoidOp(x: $0, out: $1)) }),
                ("sum", { .sum(SumOp(x: $0, out: $1)) }), ("prod", { .prod(ProdOp(x: $0, out: $1, axes: [0])) }),
                ("mean", { .mean(MeanOp(x: $0, out: $1)) }), ("max", { .max(MaxOp(x: $0, out: $1, keepdims: true)) }),
                ("any", { .any(AnyOp(x: $0, out: $1)) }), ("argmax", { .argmax(ArgmaxOp(x: $0, out: $1)) }),
                ("argsort", { .argsort(ArgsortOp(x: $0, out: $1)) }), ("cumsum", { .cumsum(CumsumOp(x: $0, out: $1)) }),
                ("median", { .median(MedianOp(x: $0, out: $1)) }), ("log_sum_exp", { .logSumExp(LogSumExpOp(x: $0, out: $1)) }),
            ]
            for shape in [[], [4]] {
                for (name, make) in unaries {
                    agree([Self.tensor(x, shape)], "\(name) \(x.name)\(shape)") { make($0[0], $1[0]) }
                    // The declared result type decides some index and accumulator dtypes.
                    agree([Self.tensor(x, shape)], outType: TensorType(.i64, []), "\(name) \(x.name)\(shape) declared i64") { make($0[0], $1[0]) }
                    cases += 2
                }
            }
        }
        XCTAssertGreaterThan(cases, 6000)
    }

    /// Shape ops on sizes, axes and bounds the fixtures do not reach.
    func testShapeOpsMatchTheReference() throws {
        let x = Self.tensor(.f32, [2, 3, 4])
        func lit(_ n: Int) -> IntOrValue { .literal(Int64(n)) }
        for shape in [[-1], [4, -1], [2, 12], [5, -1], [0, -1], [24, 1, -1], [3, 3]] {
            agree([x], "reshape \(shape)") { .reshape(ReshapeOp(x: $0[0], out: $1[0], shape: shape.map(lit))) }
        }
        for perm in [[2, 0, 1], [-1, -2, -3], [0, 0, 1], [0, 1]] {
            agree([x], "transpose \(perm)") { .transpose(TransposeOp(x: $0[0], out: $1[0], perm: perm)) }
        }
        for axis in -5...4 {
            agree([x], "expand_dims \(axis)") { .expandDims(ExpandDimsOp(x: $0[0], out: $1[0], axis: axis)) }
            agree([x], "stack \(axis)") { .stack(StackOp(tensors: [$0[0], $0[0]], out: $1[0], axis: axis)) }
            agree([x], "concatenate \(axis)") { .concatenate(ConcatenateOp(tensors: [$0[0], $0[0]], out: $1[0], axis: axis)) }
            agree([x], "argmin \(axis)") { .argmin(ArgminOp(x: $0[0], out: $1[0], axis: axis, keepdims: true)) }
            agree([x], "softmax \(axis)") { .softmax(SoftmaxOp(x: $0[0], out: $1[0], axis: axis)) }
            agree([x], "repeat \(axis)") { .repeat(RepeatOp(x: $0[0], out: $1[0], repeats: lit(2), axis: axis)) }
            for index in [-5, -4, -1, 0, 2, 3, 4] {
                agree([x], "take \(index) axis \(axis)") { .take(TakeOp(x: $0[0], out: $1[0], index: lit(index), axis: axis)) }
            }
            for sizes in [[lit(1)], [lit(2)], [lit(3)], [lit(1), lit(1)]] {
                agree([x], results: 2, "split \(sizes) \(axis)") { .split(SplitOp(x: $0[0], outs: $1, sizes: sizes, axis: axis)) }
            }
        }
        let y = Self.tensor(.f32, [1, 3, 1, 2])
        for dims in [[], [0], [-2, 0], [1], [0, 0], [4]] {
            agree([y], "squeeze \(dims)") { .squeeze(SqueezeOp(x: $0[0], out: $1[0], dims: dims)) }
        }
        for axes in [[], [0], [-1, 1], [1, -2], [3], [0, 2]] {
            for keep in [false, true] {
                agree([x], "var \(axes) \(keep)") { .var(VarOp(x: $0[0], out: $1[0], axes: axes, keepdims: keep)) }
            }
        }
        for target in [[2, 3, 4], [5, 2, 3, 4], [2, -1, 4], [-1, 2, 3, 4], [2, 1, 4], [2, 3, 4, 1]] {
            agree([x], "broadcast_to \(target)") { .broadcastTo(BroadcastToOp(x: $0[0], out: $1[0], shape: target.map(lit))) }
        }
        let flat = Self.tensor(.f32, [6])
        for (shape, strides, offset) in [([3, 2], [2, 1], 0), ([3, 2], [2, 1], 1), ([2, 2], [-1, 1], 2), ([2, 2], [-1, 1], 0), ([0, 9], [9, 9], 9)] {
            agree([flat], "as_strided \(shape) \(strides) \(offset)") {
                .asStrided(AsStridedOp(x: $0[0], out: $1[0], shape: shape.map(lit), strides: strides.map(lit), offset: offset))
            }
        }
        for reps in [[2], [1, 2], [2, 1, 1, 1], [0, 1, 1]] {
            agree([x], "tile \(reps)") { .tile(TileOp(x: $0[0], out: $1[0], reps: reps.map(lit))) }
        }
        for widths in [[0, 0, 1, 1, 2, 0], [1, 1], [0, -1, 0, 0, 0, 0]] {
            agree([x], "pad \(widths)") { .pad(PadOp(x: $0[0], out: $1[0], padWidth: widths.map(lit), mode: "constant")) }
        }
        let big = Int(Int64.max)
        for (start, stop, step) in [(0, big, 2), (-2, big, 1), (5, 0, -1), (-1, -big, -2), (1, 3, 1), (3, 1, 1)] {
            for axis in [0, 2, -1] {
                agree([x], "slice \(axis) \(start):\(stop):\(step)") {
                    .slice(SliceOp(x: $0[0], out: $1[0], axis: lit(axis), start: lit(start), stop: lit(stop), step: step))
                }
                agree([x, Self.tensor(.f32, [1])], "slice_update \(axis) \(start):\(stop):\(step)") {
                    .sliceUpdate(SliceUpdateOp(dst: $0[0], update: $0[1], out: $1[0], axis: lit(axis), start: lit(start), stop: lit(stop), step: step))
                }
            }
        }
    }

    /// Gathers, products, convolutions, quantized ops and attention on small shapes.
    func testIndexingAndLinalgMatchTheReference() throws {
        func f(_ shape: Int...) -> HostTensor { Self.tensor(.f32, shape) }
        func i(_ shape: Int...) -> HostTensor { Self.tensor(.i32, shape, 0) }
        agree([f(4, 5), i(2, 3)], "take tensor") { .take(TakeOp(x: $0[0], out: $1[0], index: .value($0[1]), axis: 1)) }
        agree([f(4, 5), Self.tensor(.i64, [], 0)], "take scalar") { .take(TakeOp(x: $0[0], out: $1[0], index: .value($0[1]), axis: 1)) }
        agree([f(1, 5), i(3, 2)], "take_along_axis") { .takeAlongAxis(TakeAlongAxisOp(x: $0[0], indices: $0[1], out: $1[0], axis: 1)) }
        agree([f(5, 6, 7), i(2, 3), i(3)], "gather") {
            .gather(GatherOp(x: $0[0], indices: [$0[1], $0[2]], out: $1[0], axes: [0, 2], sliceSizes: [1, 6, 1]))
        }
        agree([f(5, 1), i(2, 3), f(1, 1, 3)], "scatter_add") { .scatterAdd(ScatterAddOp(x: $0[0], indices: $0[1], updates: $0[2], out: $1[0])) }
        agree([f(3, 4, 5), i(6), i(6), f(6, 4)], "index_put") {
            .indexPut(IndexPutOp(x: $0[0], indices: [$0[1], $0[2]], indexAxes: [0, 2], values: $0[3], out: $1[0]))
        }
        agree([f(2, 8, 4), f(2, 3, 4), i(3)], "index_copy") { .indexCopy(IndexCopyOp(dst: $0[0], update: $0[1], indices: $0[2], out: $1[0], axis: 1)) }
        agree([f(2, 3), f(3)], "copy_into") { .copyInto(CopyIntoOp(dst: $0[0], src: $0[1], out: $1[0])) }
        for (sa, sb) in [([3], [3]), ([2, 3], [3]), ([3], [3, 4]), ([5, 1, 2, 3], [4, 3, 6]), ([2, 3], [4, 5]), ([2, 2, 3], [3, 3, 4])] {
            agree([Self.tensor(.bf16, sa), Self.tensor(.f16, sb)], "matmul \(sa) \(sb)") { .matmul(MatmulOp(a: $0[0], b: $0[1], out: $1[0])) }
            agree([Self.tensor(.f32, sa), Self.tensor(.f32, sb), Self.tensor(.bf16, [1])], "addmm \(sa) \(sb)") {
                .addmm(AddmmOp(mat1: $0[0], mat2: $0[1], out: $1[0], bias: $0[2]))
            }
        }
        agree([f(3, 2, 4), f(5, 4, 6), i(7), i(7)], "gather_mm") {
            .gatherMm(GatherMmOp(a: $0[0], b: $0[1], out: $1[0], lhsIndices: $0[2], rhsIndices: $0[3]))
        }
        agree([f(6, 1, 4), f(5, 4, 6), i(2, 6)], "gather_mm rhs") { .gatherMm(GatherMmOp(a: $0[0], b: $0[1], out: $1[0], rhsIndices: $0[2])) }
        for (stride, padding, dilation, groups) in [(1, 0, 1, 1), (2, 1, 1, 1), (3, 2, 2, 2), (1, 0, 5, 1)] {
            agree([f(2, 11, 4), Self.tensor(.bf16, [6, 3, 4 / groups])], "conv1d \(stride) \(padding) \(dilation) \(groups)") {
                .conv1D(Conv1DOp(x: $0[0], w: $0[1], out: $1[0], stride: stride, padding: padding, dilation: dilation, groups: groups))
            }
            agree([f(1, 7, 6, 4), f(6, 3, 2, 4 / groups)], "conv2d \(stride) \(padding) \(dilation) \(groups)") {
                .conv2D(Conv2DOp(x: $0[0], w: $0[1], out: $1[0], strideH: stride, strideW: 1, paddingH: padding, paddingW: padding,
                                 dilationH: dilation, dilationW: 1, groups: groups))
            }
            agree([f(1, 4, 4), f(6, 3, 4 / groups)], "conv_transpose1d \(stride) \(padding) \(dilation) \(groups)") {
                .convTranspose1D(ConvTranspose1DOp(x: $0[0], w: $0[1], out: $1[0], stride: stride, padding: padding, dilation: dilation,
                                                   outputPadding: 1, groups: groups))
            }
        }
        // Quantized: 4-bit affine, 16 words → 128 columns in groups of 32.
        let w = Self.tensor(.u32, [8, 16], 0), s = Self.tensor(.f32, [8, 4]), z = Self.tensor(.f32, [8, 4], 0)
        for transpose in [true, false] {
            for xs in [[3, 128], [2, 3, 128], [128], [3, 8], [8]] {
                agree([Self.tensor(.bf16, xs), w, s, z], "quantized_matmul \(xs) transpose \(transpose)") {
                    .quantizedMatmul(QuantizedMatmulOp(x: $0[0], w: $0[1], scales: $0[2], out: $1[0], biases: $0[3], groupSize: 32, bits: 4,
                                                       mode: "affine", transpose: transpose))
                }
            }
        }
        agree([w, s, z], "dequantize") {
            .dequantize(DequantizeOp(w: $0[0], scales: $0[1], out: $1[0], biases: $0[2], groupSize: 32, bits: 4, mode: "affine"))
        }
        agree([w, s, z, f(2, 1, 1)], "dequantize global scale") {
            .dequantize(DequantizeOp(w: $0[0], scales: $0[1], out: $1[0], biases: $0[2], groupSize: 32, bits: 4, mode: "affine",
                                     globalScale: $0[3], dtype: .bf16))
        }
        agree([Self.tensor(.u32, [8, 16], 0), Self.tensor(.u8, [8, 4], 127)], "dequantize mxfp8") {
            .dequantize(DequantizeOp(w: $0[0], scales: $0[1], out: $1[0], groupSize: 32, bits: 8, mode: "mxfp8"))
        }
        let ew = Self.tensor(.u32, [4, 8, 16], 0), es = Self.tensor(.f32, [4, 8, 4]), ez = Self.tensor(.f32, [4, 8, 4], 0)
        agree([f(6, 1, 128), ew, es, ez, i(6)], "gather_qmm") {
            .gatherQmm(GatherQmmOp(x: $0[0], w: $0[1], scales: $0[2], out: $1[0], mode: "affine", biases: $0[3], rhsIndices: $0[4],
                                   groupSize: 32, bits: 4))
        }
        agree([Self.tensor(.u8, [10, 8], 0), f(10, 2), i(1, 5)], "quantized_embedding") {
            .quantizedEmbedding(QuantizedEmbeddingOp(weight: $0[0], scales: $0[1], bits: 4, indices: $0[2], out: $1[0]))
        }
        // Attention and caches.
        agree([f(1, 4, 5, 16), f(1, 2, 9, 16), f(1, 2, 9, 8), f(5, 9)], "sdpa") {
            .sdpa(SdpaOp(q: $0[0], k: $0[1], v: $0[2], out: $1[0], scale: 0.25, mask: $0[3]))
        }
        agree([f(1, 4, 5, 16), f(1, 2, 9, 16), f(1, 2, 9, 8), f(5, 8)], "sdpa short mask") {
            .sdpa(SdpaOp(q: $0[0], k: $0[1], v: $0[2], out: $1[0], scale: 0.25, mask: $0[3]))
        }
        agree([f(1, 5, 4, 16), f(1, 64, 2, 16), f(1, 64, 2, 8)], "custom_sdpa") {
            .llamaCustomSdpa(LlamaCustomSdpaOp(q: $0[0], k: $0[1], v: $0[2], startPos: .literal(3), out: $1[0]))
        }
        agree([f(1, 5, 2, 16), f(1, 64, 2, 16)], "update_cache") {
            .llamaUpdateCache(LlamaUpdateCacheOp(value: $0[0], cache: $0[1], startPos: .literal(59), out: $1[0]))
        }
        agree([f(1, 5, 2, 16), f(1, 64, 2, 16)], "update_cache out of range") {
            .llamaUpdateCache(LlamaUpdateCacheOp(value: $0[0], cache: $0[1], startPos: .literal(60), out: $1[0]))
        }
        // A runner feeds consecutive positions (the off-graph cache refuses anything else).
        let positions = HostTensor(dtype: .i64, shape: [5], storage: [0, 1, 2, 3, 4])
        agree([f(1, 4, 5, 16), f(1, 2, 5, 16), f(1, 2, 5, 8), positions], "update_and_attend") {
            .updateAndAttend(UpdateAndAttendOp(q: $0[0], k: $0[1], v: $0[2], position: $0[3], out: $1[0], layerId: 0, outDtype: .bf16))
        }
        agree([f(1, 4, 5, 16), f(1, 2, 5, 16), f(1, 2, 5, 8), positions], "update_and_attend without layer") {
            .updateAndAttend(UpdateAndAttendOp(q: $0[0], k: $0[1], v: $0[2], position: $0[3], out: $1[0]))
        }
        for width in [1, 2, 3, 4] {
            agree([], "random_bits \(width)") { .randomBits(RandomBitsOp(out: $1[0], shape: [.literal(2), .literal(3)], width: width)) }
        }
        agree([f(2, 8), f(8), f(8)], "layer_norm") { .layerNorm(LayerNormOp(x: $0[0], out: $1[0], weight: $0[1], bias: $0[2])) }
        agree([f(1, 2, 3, 8), Self.tensor(.i64, [], 0)], "rope") { .rope(RopeOp(x: $0[0], out: $1[0], dims: 8, offset: $0[1])) }
        // Scalars.
        for kind in ["add", "truediv", "floordiv", "sym_max", "lt", "neg", "ceil", "sym_float", "numel"] {
            for dtypes in [[DType.i64, .i64], [.f64, .i64], [.bool, .bool]] {
                let args = kind == "neg" || kind == "ceil" || kind == "sym_float" || kind == "numel" ? [dtypes[0]] : dtypes
                agree(args.map { Self.tensor($0, [], 1) }, "scalar_math \(kind) \(args)") {
                    .scalarMath(ScalarMathOp(kind: kind, args: $0, out: $1[0]))
                }
            }
        }
        agree([f(2, 3)], "sym_size") { .symSize(SymSizeOp(a: $0[0], dim: -1, out: $1[0])) }
        agree([f(1, 1)], "item") { .item(ItemOp(x: $0[0], out: $1[0])) }
        agree([Self.tensor(.bf16, [1])], "item_int") { .itemInt(ItemIntOp(x: $0[0], out: $1[0])) }
    }
}
