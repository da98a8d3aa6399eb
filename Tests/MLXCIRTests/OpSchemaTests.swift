import XCTest
@testable import MLXCIR

/// The generated op set (Sources/MLXCIR/Op.generated.swift, from tools/codegen/gen_ops.py):
/// names, the uniform text form and its inverse, results/operands and renumbering.
final class OpSchemaTests: XCTestCase {
    private func v(_ i: Int) -> ValueID { ValueID(i) }

    private func dict(_ op: Op) -> [String: Attribute] {
        Dictionary(op.fields.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    private func assertRoundTrips(_ op: Op, file: StaticString = #filePath, line: UInt = #line) {
        let names = op.fields.map(\.name)
        XCTAssertEqual(Set(names).count, names.count, "duplicate field names in \(op.name)", file: file, line: line)
        XCTAssertNoThrow(try {
            let rebuilt = try Op(name: op.name, fields: dict(op))
            XCTAssertEqual(rebuilt, op, file: file, line: line)
            XCTAssertEqual(rebuilt.fields.map(\.name), names, file: file, line: line)
        }(), file: file, line: line)
    }

    private func assertThrows(_ name: String, _ fields: [String: Attribute], mentions words: [String],
                              file: StaticString = #filePath, line: UInt = #line) {
        do {
            let op = try Op(name: name, fields: fields)
            XCTFail("expected an error, got \(op)", file: file, line: line)
        } catch let error as IRError {
            for word in words {
                XCTAssertTrue(error.message.contains(word), "\"\(error.message)\" should mention \(word)", file: file, line: line)
            }
        } catch {
            XCTFail("expected IRError, got \(error)", file: file, line: line)
        }
    }

    // MARK: names

    func testNamesAreUniqueAndComplete() {
        XCTAssertEqual(Set(Op.allNames).count, Op.allNames.count)
        XCTAssertEqual(Set(Op.schemaTableNames).count, Op.schemaTableNames.count)
        XCTAssertEqual(Op.allNames.count, Op.schemaTableNames.count)
        XCTAssertEqual(Op.mlxNodeCount, 136)
        XCTAssertGreaterThan(Op.allNames.count, Op.mlxNodeCount)
        for name in Op.allNames {
            XCTAssertNotNil(name.range(of: "^[a-z][a-z0-9_]*$", options: .regularExpression), name)
            XCTAssertFalse(name.hasSuffix("_") || name.contains("__"), name)
        }
        // MLX union order: tag N is case N-1.
        XCTAssertEqual(Op.schemaTableNames.first, "NoopNode")
        XCTAssertEqual(Op.schemaTableNames[Op.mlxNodeCount - 1], "FlipNode")
        XCTAssertEqual(Op.schemaTableNames[2], "AddmmNode")
    }

    func testSpellings() {
        let expected: [String: String] = [
            "QuantizedMatmulNode": "quantized_matmul", "RMSNormNode": "rms_norm", "ARangeNode": "arange",
            "Conv1DNode": "conv1d", "ConvTranspose2DNode": "conv_transpose2d", "SdpaNode": "sdpa",
            "LlamaCustomSdpaNode": "llama_custom_sdpa", "Log1pNode": "log1p", "LogSumExpNode": "log_sum_exp",
            "GatherQmmNode": "gather_qmm", "IfNode": "if", "IdCopyNode": "id_copy", "MatmulNode": "matmul",
        ]
        for (table, name) in expected {
            guard let i = Op.schemaTableNames.firstIndex(of: table) else { XCTFail("no \(table)"); continue }
            XCTAssertEqual(Op.allNames[i], name, table)
        }
        let arange = Op.arange(ARangeOp(out: v(0), start: .literal(0), stop: .literal(4), step: .literal(1)))
        XCTAssertEqual(arange.name, "arange")
        XCTAssertEqual(arange.mlxNodeTypeName, "ARangeNode")
        XCTAssertTrue(arange.isMLXNode)
        let matmul = Op.matmul(MatmulOp(a: v(0), b: v(1), out: v(2)))
        XCTAssertEqual(matmul.name, "matmul")
        XCTAssertEqual(matmul.mlxNodeTypeName, "MatmulNode")
        XCTAssertFalse(matmul.isMLXNode)
        XCTAssertEqual(Op.allNames[matmul.ordinal], "matmul")
    }

    // MARK: round trips

    func testRope() throws {
        let plain = Op.rope(RopeOp(x: v(1), out: v(2), dims: 64, offset: v(0)))
        XCTAssertEqual(plain.fields.map(\.name), ["x", "out", "dims", "offset", "freqs", "traditional", "base", "scale"])
        XCTAssertEqual(dict(plain)["freqs"], Attribute.none)
        XCTAssertEqual(dict(plain)["base"], .float(500000))
        XCTAssertEqual(plain.results, [v(2)])
        XCTAssertEqual(plain.operands, [v(1), v(0)])
        assertRoundTrips(plain)
        let full = Op.rope(RopeOp(x: v(1), out: v(2), dims: 32, offset: v(0), freqs: v(3), traditional: true, base: 10000, scale: 0.5))
        XCTAssertEqual(full.operands, [v(1), v(0), v(3)])
        assertRoundTrips(full)
        // Fields the schema does not require may be left out: they take the schema's defaults.
        let minimal = try Op(name: "rope", fields: ["x": .value(v(1)), "out": .value(v(2)), "offset": .value(v(0))])
        XCTAssertEqual(minimal, .rope(RopeOp(x: v(1), out: v(2), dims: 0, offset: v(0), freqs: nil, traditional: false, base: 500000, scale: 1)))
    }

    func testQuantizedMatmul() {
        let op = Op.quantizedMatmul(QuantizedMatmulOp(x: v(4), w: v(1), scales: v(2), out: v(5), biases: v(3),
                                                      groupSize: 64, bits: 4, mode: "affine", transpose: true))
        XCTAssertEqual(op.name, "quantized_matmul")
        XCTAssertEqual(dict(op)["group_size"], .int(64))
        XCTAssertEqual(dict(op)["mode"], .string("affine"))
        XCTAssertEqual(op.results, [v(5)])
        XCTAssertEqual(op.operands, [v(4), v(1), v(2), v(3)])
        assertRoundTrips(op)
        assertRoundTrips(.quantizedMatmul(QuantizedMatmulOp(x: v(4), w: v(1), scales: v(2), out: v(5), mode: "nvfp4")))
    }

    func testReshapeWithRunTimeSizes() throws {
        let op = Op.reshape(ReshapeOp(x: v(1), out: v(9), shape: [.literal(1), .value(v(7)), .literal(-1)]))
        XCTAssertEqual(dict(op)["shape"], .intOrValues([.literal(1), .value(v(7)), .literal(-1)]))
        XCTAssertEqual(op.operands, [v(1), v(7)])
        XCTAssertEqual(op.results, [v(9)])
        assertRoundTrips(op)
        // IR text may spell an all-literal list as plain ints, and an empty list carries no element kind.
        let literal = try Op(name: "reshape", fields: ["x": .value(v(1)), "out": .value(v(2)), "shape": .ints([2, 3])])
        XCTAssertEqual(literal, .reshape(ReshapeOp(x: v(1), out: v(2), shape: [.literal(2), .literal(3)])))
        let empty = try Op(name: "reshape", fields: ["x": .value(v(1)), "out": .value(v(2)), "shape": .values([])])
        XCTAssertEqual(empty, .reshape(ReshapeOp(x: v(1), out: v(2), shape: [])))
        let slice = try Op(name: "slice", fields: ["x": .value(v(1)), "out": .value(v(2)), "axis": .int(1),
                                                   "start": .value(v(3)), "stop": .intOrValue(.literal(8))])
        XCTAssertEqual(slice, .slice(SliceOp(x: v(1), out: v(2), axis: .literal(1), start: .value(v(3)), stop: .literal(8), step: 1)))
    }

    func testSplitWithOuts() {
        let op = Op.split(SplitOp(x: v(1), outs: [v(5), v(6), v(7)], sizes: [.literal(2), .value(v(3)), .literal(4)], axis: -1))
        XCTAssertEqual(op.results, [v(5), v(6), v(7)])
        XCTAssertEqual(op.operands, [v(1), v(3)])
        assertRoundTrips(op)
        let renumbered = op.mapValues { ValueID($0.index + 100) }
        XCTAssertEqual(renumbered, .split(SplitOp(x: v(101), outs: [v(105), v(106), v(107)],
                                                 sizes: [.literal(2), .value(v(103)), .literal(4)], axis: -1)))
    }

    func testMetalKernel() {
        let op = Op.metalKernel(MetalKernelOp(
            name: "myexp", source: "out[i] = exp(inp[i]);", inputs: [v(1), v(2)], outputs: [v(8)],
            grid: [.literal(32), .value(v(4)), .literal(1)], threadgroup: [.literal(32), .literal(1), .literal(1)],
            header: "#include <metal_stdlib>", inputNames: ["inp", "bias"], outputNames: ["out"],
            ensureRowContiguous: false, atomicOutputs: true, outputShapesFlat: [.literal(4), .value(v(5))],
            outputShapeLengths: [2], outputDtypes: [.f32], templateArgNames: ["T", "N"],
            templateArgKinds: [2, 0], templateArgValues: [6, 128], initValue: 0.25))
        XCTAssertEqual(op.results, [v(8)])
        XCTAssertEqual(op.operands, [v(1), v(2), v(4), v(5)])
        XCTAssertEqual(dict(op)["output_dtypes"], .dtypes([.f32]))
        XCTAssertEqual(dict(op)["template_arg_kinds"], .ints([2, 0]))
        assertRoundTrips(op)
        let bare = Op.metalKernel(MetalKernelOp(name: "k", source: "", inputs: [], outputs: [v(1)], grid: [.literal(1)],
                                                threadgroup: [.literal(1)]))
        XCTAssertEqual(dict(bare)["header"], Attribute.none)
        XCTAssertEqual(dict(bare)["init_value"], Attribute.none)
        XCTAssertEqual(dict(bare)["ensure_row_contiguous"], .bool(true))
        assertRoundTrips(bare)
    }

    func testDTypesAndOptionals() {
        assertRoundTrips(.arange(ARangeOp(out: v(0), start: .literal(0), stop: .value(v(3)), step: .literal(2))))
        assertRoundTrips(.arange(ARangeOp(out: v(0), start: .literal(0), stop: .literal(5), step: .literal(1), scalarType: .i64)))
        let astype = Op.asType(AsTypeOp(x: v(1), out: v(2), scalarType: .bf16))
        XCTAssertEqual(dict(astype)["scalar_type"], .dtype(.bf16))
        assertRoundTrips(astype)
        assertRoundTrips(.full(FullOp(out: v(1), shape: [.literal(2)], v: .value(v(0)), scalarType: .f16)))
        assertRoundTrips(.full(FullOp(out: v(1), shape: [], v: .literal(-0.5), scalarType: .f32)))
        assertRoundTrips(.take(TakeOp(x: v(1), out: v(2), index: .value(v(3)), axis: 0)))
        assertRoundTrips(.gatherMm(GatherMmOp(a: v(1), b: v(2), out: v(3), rhsIndices: v(4), sortedIndicesFlag: .value(v(5)))))
        assertRoundTrips(.updateAndAttend(UpdateAndAttendOp(q: v(1), k: v(2), v: v(3), position: v(4), out: v(5),
                                                            layerId: 3, scale: nil, outDtype: .f32)))
        assertRoundTrips(.delegateCall(DelegateCallOp(backendId: "XnnpackBackend", delegateIndex: 1, payloadSize: 4096,
                                                      inputs: [v(1)], outs: [v(2), v(3)])))
        assertRoundTrips(.noop(NoopOp()))
        let cond = Op.if(IfOp(cond: .value(v(2)), thenChainIdx: 1, elseChainIdx: 2))
        XCTAssertEqual(cond.name, "if")
        XCTAssertEqual(cond.results, [])
        XCTAssertEqual(cond.operands, [v(2)])
        assertRoundTrips(cond)
    }

    func testEveryOpRebuildsFromItsRequiredFields() {
        // Give each op only what it reports missing, trying attribute kinds until one fits, then round-trip it.
        let candidates: [Attribute] = [.value(ValueID(1)), .values([ValueID(2)]), .intOrValues([.literal(3)]), .ints([4]),
                                       .string("s"), .dtype(.f32)]
        for name in Op.allNames {
            var fields: [String: Attribute] = [:]
            var tried: [String: Int] = [:]
            var built: Op?
            for _ in 0..<100 {
                do {
                    built = try Op(name: name, fields: fields)
                    break
                } catch let error as IRError {
                    let message = error.message
                    let field: String
                    if let r = message.range(of: ": missing required field '") {
                        field = String(message[r.upperBound...].prefix { $0 != "'" })
                    } else if message.hasPrefix(name + "."), message.contains(": expected ") {
                        field = String(message.dropFirst(name.count + 1).prefix { $0 != ":" })
                    } else {
                        XCTFail("\(name): unexpected error \(message)")
                        break
                    }
                    let next = tried[field, default: -1] + 1
                    guard next < candidates.count else { XCTFail("\(name).\(field): no attribute kind fits"); break }
                    tried[field] = next
                    fields[field] = candidates[next]
                } catch {
                    XCTFail("\(name): \(error)")
                    break
                }
            }
            guard let op = built else { XCTFail("\(name) was never built"); continue }
            XCTAssertEqual(op.name, name)
            assertRoundTrips(op)
            XCTAssertEqual(op.mapValues { $0 }, op)
        }
    }

    // MARK: errors

    func testBadFieldSetsThrow() {
        let rope: [String: Attribute] = ["x": .value(v(1)), "out": .value(v(2)), "offset": .value(v(0))]
        var missing = rope
        missing["x"] = nil
        assertThrows("rope", missing, mentions: ["rope", "missing", "'x'"])
        var unknown = rope
        unknown["theta"] = .float(1)
        assertThrows("rope", unknown, mentions: ["rope", "unknown", "'theta'"])
        var wrongKind = rope
        wrongKind["dims"] = .string("64")
        assertThrows("rope", wrongKind, mentions: ["rope.dims", "expected int", "string"])
        var wrongValue = rope
        wrongValue["offset"] = .int(3)
        assertThrows("rope", wrongValue, mentions: ["rope.offset", "expected value"])
        var noneRequired = rope
        noneRequired["out"] = Attribute.none
        assertThrows("rope", noneRequired, mentions: ["rope.out"])
        var tooBig = rope
        tooBig["dims"] = .int(1 << 40)
        assertThrows("rope", tooBig, mentions: ["rope.dims", "Int32"])
        assertThrows("rotary", rope, mentions: ["unknown op", "rotary"])
        assertThrows("as_type", ["x": .value(v(1)), "out": .value(v(2))], mentions: ["as_type", "scalar_type"])
        assertThrows("as_type", ["x": .value(v(1)), "out": .value(v(2)), "scalar_type": .int(6)],
                     mentions: ["as_type.scalar_type", "expected dtype"])
        assertThrows("split", ["x": .value(v(1)), "outs": .value(v(2)), "sizes": .ints([1])],
                     mentions: ["split.outs", "expected value list"])
        assertThrows("metal_kernel", ["name": .string("k")], mentions: ["metal_kernel", "missing", "'source'"])
    }
}
