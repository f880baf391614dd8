// Original file: proto/allocator.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AcquireRequest as _rtpengine_k8s_v1_AcquireRequest, AcquireRequest__Output as _rtpengine_k8s_v1_AcquireRequest__Output } from '../../rtpengine_k8s/v1/AcquireRequest.js';
import type { Allocation as _rtpengine_k8s_v1_Allocation, Allocation__Output as _rtpengine_k8s_v1_Allocation__Output } from '../../rtpengine_k8s/v1/Allocation.js';
import type { GetRequest as _rtpengine_k8s_v1_GetRequest, GetRequest__Output as _rtpengine_k8s_v1_GetRequest__Output } from '../../rtpengine_k8s/v1/GetRequest.js';
import type { ListRequest as _rtpengine_k8s_v1_ListRequest, ListRequest__Output as _rtpengine_k8s_v1_ListRequest__Output } from '../../rtpengine_k8s/v1/ListRequest.js';
import type { ListResponse as _rtpengine_k8s_v1_ListResponse, ListResponse__Output as _rtpengine_k8s_v1_ListResponse__Output } from '../../rtpengine_k8s/v1/ListResponse.js';
import type { ReleaseRequest as _rtpengine_k8s_v1_ReleaseRequest, ReleaseRequest__Output as _rtpengine_k8s_v1_ReleaseRequest__Output } from '../../rtpengine_k8s/v1/ReleaseRequest.js';
import type { ReleaseResponse as _rtpengine_k8s_v1_ReleaseResponse, ReleaseResponse__Output as _rtpengine_k8s_v1_ReleaseResponse__Output } from '../../rtpengine_k8s/v1/ReleaseResponse.js';
import type { RenewRequest as _rtpengine_k8s_v1_RenewRequest, RenewRequest__Output as _rtpengine_k8s_v1_RenewRequest__Output } from '../../rtpengine_k8s/v1/RenewRequest.js';

export interface AllocatorClient extends grpc.Client {
  Acquire(argument: _rtpengine_k8s_v1_AcquireRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  Acquire(argument: _rtpengine_k8s_v1_AcquireRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  Acquire(argument: _rtpengine_k8s_v1_AcquireRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  Acquire(argument: _rtpengine_k8s_v1_AcquireRequest, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  acquire(argument: _rtpengine_k8s_v1_AcquireRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  acquire(argument: _rtpengine_k8s_v1_AcquireRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  acquire(argument: _rtpengine_k8s_v1_AcquireRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  acquire(argument: _rtpengine_k8s_v1_AcquireRequest, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  
  Get(argument: _rtpengine_k8s_v1_GetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  Get(argument: _rtpengine_k8s_v1_GetRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  Get(argument: _rtpengine_k8s_v1_GetRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  Get(argument: _rtpengine_k8s_v1_GetRequest, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  get(argument: _rtpengine_k8s_v1_GetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  get(argument: _rtpengine_k8s_v1_GetRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  get(argument: _rtpengine_k8s_v1_GetRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  get(argument: _rtpengine_k8s_v1_GetRequest, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  
  List(argument: _rtpengine_k8s_v1_ListRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_ListResponse__Output>): grpc.ClientUnaryCall;
  List(argument: _rtpengine_k8s_v1_ListRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rtpengine_k8s_v1_ListResponse__Output>): grpc.ClientUnaryCall;
  List(argument: _rtpengine_k8s_v1_ListRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_ListResponse__Output>): grpc.ClientUnaryCall;
  List(argument: _rtpengine_k8s_v1_ListRequest, callback: grpc.requestCallback<_rtpengine_k8s_v1_ListResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _rtpengine_k8s_v1_ListRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_ListResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _rtpengine_k8s_v1_ListRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rtpengine_k8s_v1_ListResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _rtpengine_k8s_v1_ListRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_ListResponse__Output>): grpc.ClientUnaryCall;
  list(argument: _rtpengine_k8s_v1_ListRequest, callback: grpc.requestCallback<_rtpengine_k8s_v1_ListResponse__Output>): grpc.ClientUnaryCall;
  
  Release(argument: _rtpengine_k8s_v1_ReleaseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  Release(argument: _rtpengine_k8s_v1_ReleaseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rtpengine_k8s_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  Release(argument: _rtpengine_k8s_v1_ReleaseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  Release(argument: _rtpengine_k8s_v1_ReleaseRequest, callback: grpc.requestCallback<_rtpengine_k8s_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _rtpengine_k8s_v1_ReleaseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _rtpengine_k8s_v1_ReleaseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rtpengine_k8s_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _rtpengine_k8s_v1_ReleaseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _rtpengine_k8s_v1_ReleaseRequest, callback: grpc.requestCallback<_rtpengine_k8s_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  
  Renew(argument: _rtpengine_k8s_v1_RenewRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  Renew(argument: _rtpengine_k8s_v1_RenewRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  Renew(argument: _rtpengine_k8s_v1_RenewRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  Renew(argument: _rtpengine_k8s_v1_RenewRequest, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  renew(argument: _rtpengine_k8s_v1_RenewRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  renew(argument: _rtpengine_k8s_v1_RenewRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  renew(argument: _rtpengine_k8s_v1_RenewRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  renew(argument: _rtpengine_k8s_v1_RenewRequest, callback: grpc.requestCallback<_rtpengine_k8s_v1_Allocation__Output>): grpc.ClientUnaryCall;
  
}

export interface AllocatorHandlers extends grpc.UntypedServiceImplementation {
  Acquire: grpc.handleUnaryCall<_rtpengine_k8s_v1_AcquireRequest__Output, _rtpengine_k8s_v1_Allocation>;
  
  Get: grpc.handleUnaryCall<_rtpengine_k8s_v1_GetRequest__Output, _rtpengine_k8s_v1_Allocation>;
  
  List: grpc.handleUnaryCall<_rtpengine_k8s_v1_ListRequest__Output, _rtpengine_k8s_v1_ListResponse>;
  
  Release: grpc.handleUnaryCall<_rtpengine_k8s_v1_ReleaseRequest__Output, _rtpengine_k8s_v1_ReleaseResponse>;
  
  Renew: grpc.handleUnaryCall<_rtpengine_k8s_v1_RenewRequest__Output, _rtpengine_k8s_v1_Allocation>;
  
}

export interface AllocatorDefinition extends grpc.ServiceDefinition {
  Acquire: MethodDefinition<_rtpengine_k8s_v1_AcquireRequest, _rtpengine_k8s_v1_Allocation, _rtpengine_k8s_v1_AcquireRequest__Output, _rtpengine_k8s_v1_Allocation__Output>
  Get: MethodDefinition<_rtpengine_k8s_v1_GetRequest, _rtpengine_k8s_v1_Allocation, _rtpengine_k8s_v1_GetRequest__Output, _rtpengine_k8s_v1_Allocation__Output>
  List: MethodDefinition<_rtpengine_k8s_v1_ListRequest, _rtpengine_k8s_v1_ListResponse, _rtpengine_k8s_v1_ListRequest__Output, _rtpengine_k8s_v1_ListResponse__Output>
  Release: MethodDefinition<_rtpengine_k8s_v1_ReleaseRequest, _rtpengine_k8s_v1_ReleaseResponse, _rtpengine_k8s_v1_ReleaseRequest__Output, _rtpengine_k8s_v1_ReleaseResponse__Output>
  Renew: MethodDefinition<_rtpengine_k8s_v1_RenewRequest, _rtpengine_k8s_v1_Allocation, _rtpengine_k8s_v1_RenewRequest__Output, _rtpengine_k8s_v1_Allocation__Output>
}
