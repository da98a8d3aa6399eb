/// Anything that runs a loaded method on host tensors: the reference executor or a compiled program.
public protocol ProgramExecutor: AnyObject {
    func run(_ inputs: [HostTensor]) throws -> [HostTensor]
}

extension ReferenceExecutor: ProgramExecutor {}
extension JITProgram: ProgramExecutor {}
