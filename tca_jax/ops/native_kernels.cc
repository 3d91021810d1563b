// Native CPU kernels for tca-jax, called through jax.ffi (tca_jax/ops/native.py builds and
// registers this file; see its docstring for why these are not left to XLA).
//
// BmmDiag: out[b] = A[b] @ M[b] + diag-scatter(d[b], u[b]), per batch entry b (all leading dims
// flattened), row-major:
//   A [..., n, k], M [..., k, p], d [..., n], u [..., q] with p == q * n (or q == 0: no add),
//   out[b, j, i * n + j] += d[b, j] * u[b, i]   (RTRL's immediate Jacobian F_t of the SRN).
// The GEMM is BLAS's (the Fortran sgemm / dgemm whose addresses Python hands over once with
// tca_set_blas, taken from scipy.linalg.cython_blas): row-major C = A M is column-major
// C^T = M^T A^T, so BLAS is called with the operands swapped and no transposes.

#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

template <typename T>
using gemm_t = void (*)(const char*, const char*, const int*, const int*, const int*, const T*,
                        const T*, const int*, const T*, const int*, const T*, T*, const int*);

gemm_t<float> g_sgemm = nullptr;
gemm_t<double> g_dgemm = nullptr;

template <typename T> gemm_t<T> Gemm();
template <> gemm_t<float> Gemm<float>() { return g_sgemm; }
template <> gemm_t<double> Gemm<double>() { return g_dgemm; }

template <ffi::DataType DT>
ffi::Error BmmDiagImpl(ffi::Buffer<DT> a, ffi::Buffer<DT> m, ffi::Buffer<DT> d,
                       ffi::Buffer<DT> u, ffi::ResultBuffer<DT> out) {
  using T = ffi::NativeType<DT>;
  gemm_t<T> gemm = Gemm<T>();
  if (gemm == nullptr) return ffi::Error::InvalidArgument("tca_bmm_diag: BLAS not set");
  auto ad = a.dimensions();
  auto md = m.dimensions();
  auto dd = d.dimensions();
  auto ud = u.dimensions();
  if (ad.size() < 2 || md.size() != ad.size() || dd.size() != ad.size() - 1 ||
      ud.size() != ad.size() - 1) {
    return ffi::Error::InvalidArgument("tca_bmm_diag: ranks of A, M, d, u do not match");
  }
  const int64_t rank = ad.size();
  int64_t batch = 1;
  for (int64_t r = 0; r < rank - 2; ++r) {
    if (md[r] != ad[r] || dd[r] != ad[r] || ud[r] != ad[r]) {
      return ffi::Error::InvalidArgument("tca_bmm_diag: batch dimensions differ");
    }
    batch *= ad[r];
  }
  const int n = static_cast<int>(ad[rank - 2]);
  const int k = static_cast<int>(ad[rank - 1]);
  const int p = static_cast<int>(md[rank - 1]);
  const int q = static_cast<int>(ud[rank - 2]);
  if (md[rank - 2] != k || dd[rank - 2] != n || (q != 0 && static_cast<int64_t>(q) * n != p)) {
    return ffi::Error::InvalidArgument("tca_bmm_diag: inner shapes do not match");
  }
  const T* ap = a.typed_data();
  const T* mp = m.typed_data();
  const T* dp = d.typed_data();
  const T* up = u.typed_data();
  T* cp = out->typed_data();
  const T one = 1, zero = 0;
  const char no = 'N';
  for (int64_t b = 0; b < batch; ++b) {
    const T* ab = ap + b * n * k;
    const T* mb = mp + b * static_cast<int64_t>(k) * p;
    T* cb = cp + b * static_cast<int64_t>(n) * p;
    if (n > 0 && p > 0) {
      if (k > 0) {
        // Column-major C^T [p, n] = M^T [p, k] @ A^T [k, n].
        gemm(&no, &no, &p, &n, &k, &one, mb, &p, ab, &k, &zero, cb, &p);
      } else {
        for (int64_t e = 0; e < static_cast<int64_t>(n) * p; ++e) cb[e] = 0;
      }
    }
    if (q > 0) {
      const T* db = dp + b * n;
      const T* ub = up + b * q;
      for (int j = 0; j < n; ++j) {
        T* row = cb + static_cast<int64_t>(j) * p + j;
        const T dj = db[j];
        for (int i = 0; i < q; ++i) row[static_cast<int64_t>(i) * n] += dj * ub[i];
      }
    }
  }
  return ffi::Error::Success();
}

}  // namespace

extern "C" void tca_set_blas(void* sgemm, void* dgemm) {
  g_sgemm = reinterpret_cast<gemm_t<float>>(sgemm);
  g_dgemm = reinterpret_cast<gemm_t<double>>(dgemm);
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(TcaBmmDiagF32, BmmDiagImpl<ffi::DataType::F32>,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::DataType::F32>>()
                                  .Arg<ffi::Buffer<ffi::DataType::F32>>()
                                  .Arg<ffi::Buffer<ffi::DataType::F32>>()
                                  .Arg<ffi::Buffer<ffi::DataType::F32>>()
                                  .Ret<ffi::Buffer<ffi::DataType::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(TcaBmmDiagF64, BmmDiagImpl<ffi::DataType::F64>,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::DataType::F64>>()
                                  .Arg<ffi::Buffer<ffi::DataType::F64>>()
                                  .Arg<ffi::Buffer<ffi::DataType::F64>>()
                                  .Arg<ffi::Buffer<ffi::DataType::F64>>()
                                  .Ret<ffi::Buffer<ffi::DataType::F64>>());
