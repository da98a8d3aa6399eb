/// Decodes `Program` from a FlatBuffer. Every table, union and enum of `program.fbs`;
/// unknown union tags and enum values are errors that name the field and its byte offset.
enum ProgramDecoder {
    static func decode(_ fb: FlatBuffer) throws -> Program {
        let root = try fb.root("Program")
        return Program(
            version: try root.scalar(0, "version", default: UInt32(0)),
            executionPlans: try tables(root, 1, "execution_plan", "ExecutionPlan").map(plan),
            constantBuffer: try tables(root, 2, "constant_buffer", "Buffer").map { try blob($0, "storage") },
            backendDelegateData: try tables(root, 3, "backend_delegate_data", "BackendDelegateInlineData").map { try blob($0, "data") },
            segments: try tables(root, 4, "segments", "DataSegment").map(segment),
            constantSegment: try root.table(5, "constant_segment", "SubsegmentOffsets").map(subsegment),
            mutableDataSegments: try tables(root, 6, "mutable_data_segments", "SubsegmentOffsets").map(subsegment),
            namedData: try tables(root, 7, "named_data", "NamedData").map {
                NamedData(key: try requiredString($0, 0, "key"), segmentIndex: try $0.scalar(1, "segment_index", default: UInt32(0)))
            })
    }

    // MARK: helpers

    static func tables(_ t: FBTable, _ id: Int, _ field: String, _ type: String) throws -> [FBTable] {
        try t.vector(id, field, elementSize: 4)?.tables(type) ?? []
    }

    static func ints<T: FixedWidthInteger>(_ t: FBTable, _ id: Int, _ field: String, _ type: T.Type) throws -> [T] {
        try t.vector(id, field, elementSize: MemoryLayout<T>.size)?.scalars(type) ?? []
    }

    static func requiredString(_ t: FBTable, _ id: Int, _ field: String) throws -> String {
        guard let s = try t.string(id, field) else {
            throw t.fb.error("\(t.name).\(field)", t.position, "required string is missing")
        }
        return s
    }

    static func blob(_ t: FBTable, _ field: String) throws -> ByteView {
        try t.vector(0, field, elementSize: 1)?.bytes ?? ByteView(base: t.fb.data.base, count: 0, owner: t.fb.data.owner)
    }

    static func enumValue<E: RawRepresentable>(_ t: FBTable, _ id: Int, _ field: String, _ type: E.Type, default value: E) throws -> E
    where E.RawValue == Int8 {
        let raw = try t.scalar(id, field, default: value.rawValue)
        guard let e = E(rawValue: raw) else {
            throw t.fb.error("\(t.name).\(field)", t.position, "unknown \(E.self) value \(raw)")
        }
        return e
    }

    // MARK: tables

    static func segment(_ t: FBTable) throws -> DataSegment {
        DataSegment(offset: try t.scalar(0, "offset", default: UInt64(0)), size: try t.scalar(1, "size", default: UInt64(0)))
    }

    static func subsegment(_ t: FBTable) throws -> SubsegmentOffsets {
        SubsegmentOffsets(segmentIndex: try t.scalar(0, "segment_index", default: UInt32(0)),
                          offsets: try ints(t, 1, "offsets", UInt64.self))
    }

    static func plan(_ t: FBTable) throws -> ExecutionPlan {
        ExecutionPlan(
            name: try t.string(0, "name") ?? "",
            containerMeta: try t.table(1, "container_meta_type", "ContainerMetadata").map {
                ContainerMetadata(encodedInputs: try $0.string(0, "encoded_inp_str"), encodedOutputs: try $0.string(1, "encoded_out_str"))
            },
            values: try tables(t, 2, "values", "EValue").map(evalue),
            inputs: try ints(t, 3, "inputs", Int32.self).map(Int.init),
            outputs: try ints(t, 4, "outputs", Int32.self).map(Int.init),
            chains: try tables(t, 5, "chains", "Chain").map(chain),
            operators: try tables(t, 6, "operators", "Operator").map {
                Operator(name: try $0.string(0, "name") ?? "", overload: try $0.string(1, "overload") ?? "")
            },
            delegates: try tables(t, 7, "delegates", "BackendDelegate").map(delegate),
            nonConstBufferSizes: try ints(t, 8, "non_const_buffer_sizes", Int64.self),
            nonConstBufferDevice: try tables(t, 9, "non_const_buffer_device", "NonConstBufferDevice").map {
                NonConstBufferDevice(bufferIndex: try $0.scalar(0, "buffer_idx", default: Int32(0)),
                                     deviceType: try enumValue($0, 1, "device_type", DeviceType.self, default: .cpu),
                                     deviceIndex: try $0.scalar(2, "device_index", default: Int8(0)))
            })
    }

    static func evalue(_ t: FBTable) throws -> EValue {
        let tag = try t.scalar(0, "val_type", default: UInt8(0))
        if tag == 0 { return .none }
        let names = ["", "Null", "Int", "Bool", "Double", "Tensor", "String", "IntList", "DoubleList", "BoolList",
                     "TensorList", "OptionalTensorList"]
        guard Int(tag) < names.count else {
            throw t.fb.error("EValue.val_type", t.position, "unknown KernelTypes union tag \(tag) (known: 0...11)")
        }
        guard let v = try t.table(1, "val", names[Int(tag)]) else {
            throw t.fb.error("EValue.val", t.position, "union tag \(tag) (\(names[Int(tag)])) without a value")
        }
        switch tag {
        case 1: return .null
        case 2: return .int(try v.scalar(0, "int_val", default: Int64(0)))
        case 3: return .bool(try v.bool(0, "bool_val"))
        case 4: return .double(try v.double(0, "double_val"))
        case 5: return .tensor(try tensor(v))
        case 6: return .string(try v.string(0, "string_val") ?? "")
        case 7: return .intList(try ints(v, 0, "items", Int64.self))
        case 8: return .doubleList(try v.vector(0, "items", elementSize: 8)?.doubles() ?? [])
        case 9: return .boolList(try v.vector(0, "items", elementSize: 1)?.bools() ?? [])
        case 10: return .tensorList(try ints(v, 0, "items", Int32.self))
        default: return .optionalTensorList(try ints(v, 0, "items", Int32.self))
        }
    }

    static func tensor(_ t: FBTable) throws -> TensorValue {
        TensorValue(
            scalarType: try t.scalar(0, "scalar_type", default: Int8(0)),
            storageOffset: try t.scalar(1, "storage_offset", default: Int32(0)),
            sizes: try ints(t, 2, "sizes", Int32.self),
            dimOrder: try ints(t, 3, "dim_order", UInt8.self),
            requiresGrad: try t.bool(4, "requires_grad"),
            dataBufferIndex: try t.scalar(5, "data_buffer_idx", default: UInt32(0)),
            allocation: try t.table(6, "allocation_info", "AllocationDetails").map {
                let low = UInt64(try $0.scalar(1, "memory_offset_low", default: UInt32(0)))
                let high = UInt64(try $0.scalar(2, "memory_offset_high", default: UInt32(0)))
                return AllocationDetails(memoryID: try $0.scalar(0, "memory_id", default: UInt32(0)), offset: high << 32 | low)
            },
            layout: try t.scalar(7, "layout", default: Int8(0)),
            dynamism: try enumValue(t, 8, "shape_dynamism", ShapeDynamism.self, default: .staticShape),
            extra: try t.table(9, "extra_tensor_info", "ExtraTensorInfo").map {
                ExtraTensorInfo(mutableDataSegmentsIndex: try $0.scalar(0, "mutable_data_segments_idx", default: UInt64(0)),
                                fullyQualifiedName: try $0.string(1, "fully_qualified_name"),
                                location: try enumValue($0, 2, "location", TensorDataLocation.self, default: .segment),
                                deviceType: try enumValue($0, 3, "device_type", DeviceType.self, default: .cpu),
                                deviceIndex: try $0.scalar(4, "device_index", default: Int8(0)))
            },
            position: t.fb.fileOffset + t.position)
    }

    static func chain(_ t: FBTable) throws -> Chain {
        Chain(
            inputs: try ints(t, 0, "inputs", Int32.self),
            outputs: try ints(t, 1, "outputs", Int32.self),
            instructions: try tables(t, 2, "instructions", "Instruction").map(instruction),
            stacktrace: try tables(t, 3, "stacktrace", "FrameList").map { list in
                try tables(list, 0, "items", "Frame").map {
                    Frame(filename: try $0.string(0, "filename"), line: try $0.scalar(1, "lineno", default: Int32(0)),
                          name: try $0.string(2, "name"), context: try $0.string(3, "context"))
                }
            })
    }

    static func instruction(_ t: FBTable) throws -> Instruction {
        let tag = try t.scalar(0, "instr_args_type", default: UInt8(0))
        let names = ["", "KernelCall", "DelegateCall", "MoveCall", "JumpFalseCall", "FreeCall"]
        guard tag >= 1, Int(tag) < names.count else {
            throw t.fb.error("Instruction.instr_args_type", t.position, "unknown InstructionArguments union tag \(tag) (known: 1...5)")
        }
        guard let a = try t.table(1, "instr_args", names[Int(tag)]) else {
            throw t.fb.error("Instruction.instr_args", t.position, "union tag \(tag) (\(names[Int(tag)])) without a value")
        }
        switch tag {
        case 1: return .kernelCall(opIndex: try a.scalar(0, "op_index", default: Int32(0)), args: try ints(a, 1, "args", Int32.self))
        case 2: return .delegateCall(delegateIndex: try a.scalar(0, "delegate_index", default: Int32(0)), args: try ints(a, 1, "args", Int32.self))
        case 3: return .move(from: try a.scalar(0, "move_from", default: Int32(0)), to: try a.scalar(1, "move_to", default: Int32(0)))
        case 4: return .jumpFalse(condition: try a.scalar(0, "cond_value_index", default: Int32(0)),
                                  destination: try a.scalar(1, "destination_instruction", default: Int32(0)))
        default: return .free(value: try a.scalar(0, "value_index", default: Int32(0)))
        }
    }

    static func delegate(_ t: FBTable) throws -> BackendDelegate {
        let processed = try t.requiredTable(1, "processed", "BackendDelegateDataReference")
        return BackendDelegate(
            id: try t.string(0, "id") ?? "",
            location: try enumValue(processed, 0, "location", DataLocation.self, default: .inline),
            index: try processed.scalar(1, "index", default: UInt32(0)),
            compileSpecs: try tables(t, 2, "compile_specs", "CompileSpec").map {
                CompileSpec(key: try $0.string(0, "key") ?? "", value: try $0.vector(1, "value", elementSize: 1)?.bytes
                            ?? ByteView(base: $0.fb.data.base, count: 0, owner: nil))
            })
    }
}
