// NCCL's ncclUniqueId as a C struct, so that Swift can pass it by value to ncclCommInitRank through a function
// pointer (Sources/LLM/Distributed/NCCL.swift): C passes a 128-byte struct in memory on x86-64 and by reference on
// AArch64, which only a real C struct type gets right. NCCL itself is loaded at run time; nothing links it.
#pragma once

typedef struct {
    char internal[128];
} LLMNCCLUniqueID;
