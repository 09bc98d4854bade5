#include "errors.h"

#include <string.h>
#include <uv.h>

#include <string>

namespace forkd {

Napi::Error SystemError(Napi::Env env, int err, const char* syscall, const char* hint) {
  // uv_err_name maps a negated errno to its symbolic name ("EAGAIN"); that is
  // the stable identifier Node's own system errors carry in `code`.
  const char* code = uv_err_name(-err);
  std::string message = std::string(syscall) + " failed: " + strerror(err) + " (" + code + ")";
  if (hint != nullptr && hint[0] != '\0') message += ". " + std::string(hint);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const char* hint) {
  SystemError(env, err, syscall, hint).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool ArgInt(const Napi::CallbackInfo& info, size_t i, int* out) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    std::string message = "argument " + std::to_string(i) + " must be an integer";
    Napi::TypeError::New(info.Env(), message).ThrowAsJavaScriptException();
    return false;
  }
  double value = info[i].As<Napi::Number>().DoubleValue();
  if (value != static_cast<int>(value)) {
    std::string message = "argument " + std::to_string(i) + " must be an integer";
    Napi::TypeError::New(info.Env(), message).ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<int>(value);
  return true;
}

}  // namespace forkd
