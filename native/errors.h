// Errors that cross from the addon into JS, shaped like Node's SystemError.
#pragma once
#include <napi.h>

namespace forkd {

// Builds an Error with code (e.g. "EAGAIN"), errno, syscall and a message that
// says what failed and what the user can do. `hint` may be null.
Napi::Error SystemError(Napi::Env env, int err, const char* syscall, const char* hint);

// Throws SystemError and returns undefined, for `return ThrowErrno(...)`.
Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const char* hint = nullptr);

// Throws a TypeError for a bad argument; validation proper lives in TypeScript,
// this only keeps a wrong call from reaching a syscall.
Napi::Value ThrowType(Napi::Env env, const char* message);

// Argument helpers: they throw and return false when the argument is wrong.
bool ArgInt(const Napi::CallbackInfo& info, size_t i, int* out);

}  // namespace forkd
