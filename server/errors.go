package server

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/coordinator/txns"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// errorCode chooses the Kafka error code for an error from the packages the
// server calls. This is the one place where that choice is made.
func errorCode(err error) int16 {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, segment.ErrCRC), errors.Is(err, segment.ErrShortBatch),
		errors.Is(err, segment.ErrBatchLength), errors.Is(err, segment.ErrCorrupt),
		errors.Is(err, segment.ErrRecordsCodec):
		return kerr.CorruptMessage.Code
	case errors.Is(err, segment.ErrMagic):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, segment.ErrRecordCount), errors.Is(err, partition.ErrRecordCount),
		errors.Is(err, segment.ErrInvalidRecord), errors.Is(err, segment.ErrRecordsTooLarge),
		errors.Is(err, partition.ErrControlBatch), errors.Is(err, partition.ErrTransactional):
		return kerr.InvalidRecord.Code
	case errors.Is(err, partition.ErrMessageTooLarge), errors.Is(err, segment.ErrBatchTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, partition.ErrCompression):
		return kerr.UnsupportedCompressionType.Code
	case errors.Is(err, partition.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, partition.ErrProducerFenced):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, partition.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, partition.ErrCoordinatorFenced):
		return kerr.TransactionCoordinatorFenced.Code
	case errors.Is(err, segment.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, partition.ErrUnknownPartition), errors.Is(err, cluster.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, cluster.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, cluster.ErrNotEnoughBrokers):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, partition.ErrNotLeader):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, partition.ErrFencedEpoch):
		return kerr.FencedLeaderEpoch.Code
	case errors.Is(err, partition.ErrUnknownEpoch):
		return kerr.UnknownLeaderEpoch.Code
	case errors.Is(err, partition.ErrNotEnoughReplicas):
		return kerr.NotEnoughReplicas.Code
	case errors.Is(err, partition.ErrNotEnoughReplicasAfterAppend):
		return kerr.NotEnoughReplicasAfterAppend.Code
	case errors.Is(err, partition.ErrLeaderNotAvailable):
		return kerr.LeaderNotAvailable.Code
	case errors.Is(err, txns.ErrConcurrentTransactions):
		return kerr.ConcurrentTransactions.Code
	case errors.Is(err, txns.ErrProducerFenced):
		return kerr.ProducerFenced.Code
	case errors.Is(err, txns.ErrInvalidProducerIDMapping):
		return kerr.InvalidProducerIDMapping.Code
	case errors.Is(err, txns.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, txns.ErrInvalidTimeout):
		return kerr.InvalidTransactionTimeout.Code
	case errors.Is(err, txns.ErrUnknownID):
		return kerr.TransactionalIDNotFound.Code
	case errors.Is(err, coordinator.ErrNotCoordinator), errors.Is(err, group.ErrNotCoordinator):
		return kerr.NotCoordinator.Code
	case errors.Is(err, coordinator.ErrLoadInProgress):
		return kerr.CoordinatorLoadInProgress.Code
	case errors.Is(err, coordinator.ErrNotAvailable), errors.Is(err, coordinator.ErrClosed):
		return kerr.CoordinatorNotAvailable.Code
	case errors.Is(err, coordinator.ErrRecordTooLarge):
		return kerr.InvalidCommitOffsetSize.Code
	case errors.Is(err, coordinator.ErrProducerFenced):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, coordinator.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, group.ErrTxnNotSupported):
		return kerr.CoordinatorNotAvailable.Code
	case errors.Is(err, cluster.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, cluster.ErrPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, partition.ErrInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, segment.ErrNoSpace):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, segment.ErrOffline), errors.Is(err, segment.ErrClosed):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, group.ErrInvalidGroupID):
		return kerr.InvalidGroupID.Code
	case errors.Is(err, group.ErrInvalidSessionTimeout):
		return kerr.InvalidSessionTimeout.Code
	case errors.Is(err, group.ErrInconsistentProtocol):
		return kerr.InconsistentGroupProtocol.Code
	case errors.Is(err, group.ErrUnknownMember):
		return kerr.UnknownMemberID.Code
	case errors.Is(err, group.ErrIllegalGeneration):
		return kerr.IllegalGeneration.Code
	case errors.Is(err, group.ErrRebalanceInProgress):
		return kerr.RebalanceInProgress.Code
	case errors.Is(err, group.ErrMemberIDRequired):
		return kerr.MemberIDRequired.Code
	case errors.Is(err, group.ErrFencedInstanceID):
		return kerr.FencedInstanceID.Code
	case errors.Is(err, group.ErrCoordinatorNotAvailable):
		return kerr.CoordinatorNotAvailable.Code
	case errors.Is(err, group.ErrGroupNotFound):
		return kerr.GroupIDNotFound.Code
	case errors.Is(err, group.ErrNonEmptyGroup):
		return kerr.NonEmptyGroup.Code
	case errors.Is(err, group.ErrSubscribedToTopic):
		return kerr.GroupSubscribedToTopic.Code
	case errors.Is(err, group.ErrMetadataTooLarge):
		return kerr.OffsetMetadataTooLarge.Code
	case errors.Is(err, group.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, group.ErrMemberMetadataTooLarge):
		return kerr.InvalidRequest.Code
	case errors.Is(err, group.ErrGroupFull):
		return kerr.GroupMaxSizeReached.Code
	case errors.Is(err, cluster.ErrElectionNotNeeded):
		return kerr.ElectionNotNeeded.Code
	case errors.Is(err, cluster.ErrPreferredLeaderNotAvailable):
		return kerr.PreferredLeaderNotAvailable.Code
	case errors.Is(err, cluster.ErrEligibleLeadersNotAvailable):
		return kerr.EligibleLeadersNotAvailable.Code
	case errors.Is(err, cluster.ErrElectionType):
		return kerr.InvalidRequest.Code
	case errors.Is(err, cluster.ErrStaleLeaderEpoch):
		// An election that lost its race with another leader change
		// twice: the client may ask again.
		return kerr.NotController.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	}
	return kerr.UnknownServerError.Code
}
