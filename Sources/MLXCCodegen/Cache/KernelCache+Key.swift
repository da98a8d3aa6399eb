import LLVMKit

extension KernelCache {
    /// How the object code is made from the IR (the pass pipeline, optimization and code-generation
    /// levels, relocation model): change it whenever `TargetMachine` or the compile path changes
    /// what the same IR compiles to.
    static let recipe = "default<O3>;CodeGenLevelAggressive;RelocPIC;CodeModelDefault"

    /// The name of a kernel's entry: a digest of everything its object code depends on — the
    /// kernel's LLVM IR as emitted (before optimization, as bitcode or text; the module's triple,
    /// data layout and vector-width attributes included), the target CPU and its feature string (so
    /// `MLXC_ISA=avx2` gets other entries), the LLVM and mlxc versions and the compile recipe.
    public func key(ir: [UInt8], host: HostTarget) -> String {
        var h = header(host)
        h.update(bytes: ir)
        return SHA256.hexString(h.finish())
    }

    public func key(irText: String, host: HostTarget) -> String {
        var h = header(host)
        h.update(irText)
        return SHA256.hexString(h.finish())
    }

    private func header(_ host: HostTarget) -> SHA256 {
        var h = SHA256()
        for part in ["mlxc-kernel-cache-1", salt, "llvm " + LLVMKit.version, Self.recipe, host.triple, host.cpuName, host.features] {
            h.update(part)
            h.update(bytes: [0])
        }
        return h
    }
}
