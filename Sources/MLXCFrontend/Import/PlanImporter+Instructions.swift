import MLXCIR

extension PlanImporter {
    func translate(_ instruction: Instruction, index: Int) throws {
        switch instruction {
        case .kernelCall(let opIndex, let args):
            guard opIndex >= 0, Int(opIndex) < plan.operators.count else {
                throw fail("KernelCall.op_index \(opIndex) is out of range (\(plan.operators.count) operators)")
            }
            for a in args { try checkIndex(Int(a), "KernelCall.args") }
            let name = plan.operators[Int(opIndex)].qualifiedName
            guard let translator = Self.translators[name] else {
                throw fail("unsupported op \(name)")
            }
            try translator(self, args.map(Int.init))
        case .delegateCall(let delegateIndex, let args):
            guard delegateIndex >= 0, Int(delegateIndex) < plan.delegates.count else {
                throw fail("DelegateCall.delegate_index \(delegateIndex) is out of range (\(plan.delegates.count) delegates)")
            }
            for a in args { try checkIndex(Int(a), "DelegateCall.args") }
            try translateDelegate(Int(delegateIndex), args: args.map(Int.init))
        case .move(let from, let to):
            try checkIndex(Int(from), "MoveCall.move_from")
            try checkIndex(Int(to), "MoveCall.move_to")
            current[Int(to)] = try read(Int(from))
        case .free:
            break // Memory lifetime is the planner's business in mlxc; freeing a slot changes no value.
        case .jumpFalse:
            throw fail("JumpFalseCall (control flow in the host plan) is not supported yet")
        }
    }

    func translateDelegate(_ index: Int, args: [Int]) throws {
        let delegate = plan.delegates[index]
        let context = "ExecutionPlan[\(plan.name)].delegates[\(index)] (\(delegate.id))"
        let payload = try pte.delegatePayload(delegate, context)
        if delegate.id == MLXPayload.backendID {
            let mlx = try MLXPayload(payload, space: context, fileOffset: pte.fileOffset(of: payload))
            try MLXInliner(importer: self, payload: mlx, delegateIndex: index).inline(args: args)
            return
        }
        if delegate.id == XNNPayload.backendID {
            let xnn = try XNNPayload(payload, space: context, fileOffset: pte.fileOffset(of: payload))
            try XNNInliner(importer: self, payload: xnn, delegateIndex: index).inline(args: args)
            return
        }
        // Opaque backend (XNNPACK, …): its inputs come first, then its outputs. Outputs are the
        // args no earlier instruction defined and that are planned tensors.
        var inputs: [ValueID] = []
        var outs: [ValueID] = []
        for a in args {
            if current[a] != nil || isReadable(a) {
                inputs.append(try read(a))
            } else {
                outs.append(try write(a))
            }
        }
        emit(.delegateCall(DelegateCallOp(backendId: delegate.id, delegateIndex: index, payloadSize: payload.count,
                                          inputs: inputs, outs: outs)))
    }

    /// Whether reading the slot would succeed without a prior write (constants, literals, state).
    func isReadable(_ ev: Int) -> Bool {
        guard let value = plan.values[safe: ev] else { return false }
        switch value {
        case .tensor(let t):
            return t.dataBufferIndex > 0 || t.extra?.location == .external || (t.allocation != nil && stateSlots.contains(ev))
        case .int, .double, .bool: return true
        default: return false
        }
    }
}
