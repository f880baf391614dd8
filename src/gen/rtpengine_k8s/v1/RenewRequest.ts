// Original file: proto/allocator.proto

import type { Allocation as _rtpengine_k8s_v1_Allocation, Allocation__Output as _rtpengine_k8s_v1_Allocation__Output } from '../../rtpengine_k8s/v1/Allocation.js';

export interface RenewRequest {
  'uid'?: (string);
  'held'?: (_rtpengine_k8s_v1_Allocation | null);
}

export interface RenewRequest__Output {
  'uid': (string);
  'held': (_rtpengine_k8s_v1_Allocation__Output | null);
}
