// The LLVM 19 C API, as one header for Swift. Include path: Package.swift (llvmInclude).
#include <llvm-c/Core.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Error.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/DebugInfo.h>
